//! `mailmesh chat …`: conversations with other people from the terminal,
//! each subcommand one request to the running engine.

use std::process::ExitCode;

use clap::Subcommand;

use crate::api::{Reply, Request};
use crate::control::Control;
use crate::home::NodeHome;

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// List the conversations, newest first, with unread counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a conversation (its id, or the other person's address).
    Show {
        conversation: String,
        /// How many of the newest messages to show.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Write to a person (by address) or into a conversation (by id).
    Send {
        conversation: String,
        /// The text; several words are joined by spaces.
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Mark a conversation read (its authors get read receipts).
    Read { conversation: String },
    /// Start a group with verified people; prints the group's id.
    Group {
        #[arg(long, default_value = "")]
        title: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Add or remove members of a group.
    Members {
        conversation: String,
        #[arg(long, value_name = "EMAIL")]
        add: Vec<String>,
        #[arg(long, value_name = "EMAIL")]
        remove: Vec<String>,
    },
}

pub async fn run(home: &NodeHome, command: ChatCommand) -> anyhow::Result<ExitCode> {
    let request = match &command {
        ChatCommand::List { .. } => Request::ChatList,
        ChatCommand::Show { conversation, limit, .. } => {
            Request::ChatShow { conversation: conversation.clone(), limit: Some(*limit) }
        }
        ChatCommand::Send { conversation, text } => {
            Request::ChatSend { conversation: conversation.clone(), text: text.join(" ") }
        }
        ChatCommand::Read { conversation } => Request::ChatRead { conversation: conversation.clone() },
        ChatCommand::Group { title, members } => {
            Request::ChatGroupCreate { title: title.clone(), members: members.clone() }
        }
        ChatCommand::Members { conversation, add, remove } => {
            Request::ChatGroupMembers { conversation: conversation.clone(), add: add.clone(), remove: remove.clone() }
        }
    };
    let reply = Control::connect(home).await?.request(request).await?;
    match (command, reply) {
        (ChatCommand::List { json: true }, Reply::Conversations { conversations, .. }) => {
            println!("{}", serde_json::to_string_pretty(&conversations)?)
        }
        (ChatCommand::List { .. }, Reply::Conversations { conversations, .. }) => {
            for c in conversations {
                let unread = if c.unread > 0 { format!(" ({} unread)", c.unread) } else { String::new() };
                println!("{}  {}{unread}  {}", c.id, c.title, c.last_text);
            }
        }
        (ChatCommand::Show { json: true, .. }, Reply::Conversation { conversation }) => {
            println!("{}", serde_json::to_string_pretty(&conversation)?)
        }
        (ChatCommand::Show { .. }, Reply::Conversation { conversation }) => {
            println!("{} ({})", conversation.summary.title, conversation.summary.members.join(", "));
            if conversation.earlier > 0 {
                println!("({} earlier messages; --limit shows more)", conversation.earlier);
            }
            for m in conversation.messages {
                let fate = if !m.pending.is_empty() {
                    " [waiting]"
                } else if !m.read.is_empty() {
                    " [read]"
                } else if !m.delivered.is_empty() {
                    " [delivered]"
                } else {
                    ""
                };
                let unverified = if m.verified { "" } else { " (unverified)" };
                println!("{}{unverified}: {}{fate}", m.author, m.text);
            }
        }
        (ChatCommand::Send { .. }, Reply::ChatSent { message }) => println!("sent {}", message.id),
        (_, Reply::ChatDone { conversation }) => println!("{conversation}"),
        (_, other) => anyhow::bail!("unexpected reply from the engine: {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}
