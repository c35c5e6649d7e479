//! `mailmesh mail status` and `mailmesh mail settings`: how the import of
//! the mailbox stands, and how it behaves.

use std::process::ExitCode;

use crate::api::{ImportSettingsChange, ImportSettingsView, ImportView, Reply, Request, Status};
use crate::control::Control;
use crate::home::NodeHome;

const MB: f64 = 1_000_000.0;

pub async fn status(home: &NodeHome, json: bool) -> anyhow::Result<ExitCode> {
    let status = super::status_of(home).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status.import)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &status.import {
        None => println!("import: not in a network yet (nothing is imported before this device is confirmed)"),
        Some(view) => {
            println!("import: {}", describe(view, &status));
            let budget = match view.budget_bytes_per_day {
                Some(bytes) => format!(" of a {:.0} MB daily budget", bytes as f64 / MB),
                None => String::new(),
            };
            println!("today (UTC): {:.1} MB fetched{budget}", view.today_bytes as f64 / MB);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line on what the import does, in words.
fn describe(view: &ImportView, status: &Status) -> String {
    let progress = format!(
        "{} of {} messages, {:.1} of {:.1} MB",
        view.messages_done,
        view.messages_total,
        view.bytes_done as f64 / MB,
        view.bytes_total as f64 / MB
    );
    let left = view.seconds_left.map(|s| format!(", about {} left", duration(s))).unwrap_or_default();
    let resumes = view.resumes_at_ms.map(|ms| format!(" until {}", utc(ms))).unwrap_or_default();
    match view.state.as_str() {
        "importing" => format!("importing — {progress}{left}"),
        "by_device" => {
            let id = view.by_device.clone().unwrap_or_default();
            let name = status.roster.iter().find(|m| m.node_id == id).map_or(id.as_str(), |m| &m.device_name);
            let doing =
                if view.messages_done < view.messages_total { format!(" — {progress}{left}") } else { String::new() };
            format!("done by your device {name}{doing}")
        }
        "waiting_for_devices" => "waiting a moment for your other devices (one of them may be importing)".into(),
        "paused_budget" => format!("paused{resumes}: the day's download budget is spent — {progress}"),
        "paused_server" => format!("paused{resumes}: the mail server is limiting the account — {progress}"),
        _ => "up to date".into(),
    }
}

fn duration(secs: u64) -> String {
    match secs {
        0..=89 => format!("{secs} s"),
        90..=5399 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{:.1} h", secs as f64 / 3600.0),
    }
}

fn utc(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map_or_else(|| format!("{ms} ms"), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

pub async fn settings(home: &NodeHome, change: ImportSettingsChange, json: bool) -> anyhow::Result<ExitCode> {
    let settings = match Control::connect(home).await?.request(Request::ImportSettings { change }).await? {
        Reply::ImportSettings { settings } => settings,
        other => anyhow::bail!("unexpected reply from the engine: {other:?}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&settings)?);
    } else {
        print_settings(&settings);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_settings(settings: &ImportSettingsView) {
    println!("folders: {}", settings.folders.join(", "));
    println!("since: {}", settings.since.as_deref().unwrap_or("all mail"));
    println!("largest attachment: {:.0} MB", settings.max_attachment_bytes as f64 / MB);
    match settings.inline_images_under_bytes {
        0 => println!("inline images: all imported"),
        bytes => println!("inline images: those under {} kB left out (logos, icons)", bytes / 1000),
    }
    match (settings.budget_bytes_per_day, settings.budget_source.as_str()) {
        (Some(bytes), "provider") => {
            println!(
                "daily budget: {:.0} MB (your provider's limit, less a fifth for your own mail app)",
                bytes as f64 / MB
            )
        }
        (Some(bytes), _) => println!("daily budget: {:.0} MB", bytes as f64 / MB),
        (None, _) => println!("daily budget: none"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_796_256_000_000), "2026-12-03 00:00 UTC");
        assert_eq!(super::duration(4000), "67 min");
    }
}
