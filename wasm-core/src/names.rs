//! Names other people choose, made safe to show and to save.
//!
//! A file, device or contact name comes from someone else's node or mail.
//! Control characters could break a log line or a mail header, and
//! bidirectional overrides (`U+202E` and friends) make `invoice\u{202E}fdp.exe`
//! show as a name ending in `exe.pdf`. [`visible`] removes both, and the invisible characters
//! that space or join nothing (zero-width space, word joiner, BOM); it keeps
//! the zero-width joiner and non-joiner, which scripts and emoji need.

/// Whether `c` changes how text looks without being seen itself.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidirectional marks, embeddings, overrides and isolates.
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            // Invisible spacing and joining that no script needs.
            | '\u{00AD}' | '\u{180E}' | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
            // Interlinear annotation.
            | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `name` without hidden characters, trimmed.
pub fn visible(name: &str) -> String {
    name.chars().filter(|c| !is_hidden(*c)).collect::<String>().trim().to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn overrides_and_controls_go_and_scripts_stay() {
        assert_eq!(visible("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(visible(" a\u{0}b\u{7}\n "), "ab");
        assert_eq!(visible("\u{2067}x\u{2069}\u{200B}y\u{FEFF}"), "xy");
        // Persian with a zero-width non-joiner, and an emoji family.
        assert_eq!(visible("می\u{200C}خواهم"), "می\u{200C}خواهم");
        assert_eq!(visible("👩\u{200D}👩\u{200D}👧"), "👩\u{200D}👩\u{200D}👧");
    }

    proptest! {
        #[test]
        fn nothing_hidden_survives_and_a_visible_name_stays(name in "\\PC{0,40}", noise in "[\\u{202A}-\\u{202E}\\u{0}-\\u{1F}]{0,5}") {
            let mixed: String = name.chars().chain(noise.chars()).collect();
            let shown = visible(&mixed);
            prop_assert!(!shown.chars().any(is_hidden));
            prop_assert_eq!(visible(&shown), shown.clone());
        }
    }
}
