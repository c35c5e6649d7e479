//! Finding files in a drive of years: what each file is called, who sent
//! it and in which mail, its kind, date and size, held in memory (about
//! 200 bytes a file: 10 MB for 50,000), so a search filters and sorts
//! those and reads from the index only the records of the page it shows.
//!
//! The index (`index.rs`) builds it from its records the first time it is
//! asked and keeps it current on every write; nothing here reads the disk.

use std::collections::HashMap;

use crate::api::{FileQuery, Origin};

/// What the index tells of a file when it writes it.
pub struct Fields<'a> {
    pub name: &'a str,
    pub media_type: &'a str,
    pub size: u64,
    pub added_ms: u64,
    pub origin: Option<&'a Origin>,
}

/// What a search looks at of one file.
#[derive(Debug, Clone)]
struct Entry {
    /// Lowercase.
    name: String,
    from: String,
    subject: String,
    kind: &'static str,
    /// The mail's date, else when the file was added (ms).
    date_ms: u64,
    size: u64,
}

impl Entry {
    fn of(record: &Fields<'_>) -> Entry {
        let origin = record.origin;
        let mail_date = origin
            .and_then(|o| chrono::DateTime::parse_from_rfc3339(&o.date).ok())
            .and_then(|d| u64::try_from(d.timestamp_millis()).ok());
        Entry {
            name: record.name.to_lowercase(),
            from: origin.map(|o| o.from.to_lowercase()).unwrap_or_default(),
            subject: origin.map(|o| o.subject.to_lowercase()).unwrap_or_default(),
            kind: kind_of(record.media_type, record.name),
            date_ms: mail_date.unwrap_or(record.added_ms),
            size: record.size,
        }
    }

    fn matches(&self, query: &Query) -> bool {
        let text = query
            .text
            .as_deref()
            .is_none_or(|t| self.name.contains(t) || self.from.contains(t) || self.subject.contains(t));
        text && query.from.as_deref().is_none_or(|f| self.from.contains(f))
            && query.kind.as_deref().is_none_or(|k| self.kind == k)
            && query.since_ms.is_none_or(|since| self.date_ms >= since)
            && query.until_ms.is_none_or(|until| self.date_ms < until)
    }
}

/// A [`FileQuery`] with its texts lowercased once.
struct Query {
    text: Option<String>,
    from: Option<String>,
    kind: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
}

impl Query {
    fn of(query: &FileQuery) -> Query {
        let lower = |t: &Option<String>| t.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_lowercase);
        Query {
            text: lower(&query.text),
            from: lower(&query.from),
            kind: lower(&query.kind),
            since_ms: query.since_ms,
            until_ms: query.until_ms,
        }
    }
}

#[derive(Debug, Default)]
pub struct SearchIndex {
    entries: HashMap<[u8; 32], Entry>,
}

impl SearchIndex {
    pub fn put(&mut self, id: [u8; 32], file: &Fields<'_>) {
        self.entries.insert(id, Entry::of(file));
    }

    pub fn remove(&mut self, id: &[u8; 32]) {
        self.entries.remove(id);
    }

    /// The ids of the page of files that match, in order, and how many
    /// match in all.
    pub fn search(&self, query: &FileQuery) -> (Vec<[u8; 32]>, usize) {
        let filter = Query::of(query);
        let mut found: Vec<(&[u8; 32], &Entry)> = self.entries.iter().filter(|(_, e)| e.matches(&filter)).collect();
        let total = found.len();
        // Ties are broken by id, so pages never overlap or skip.
        match query.sort.as_deref() {
            Some("name") => found.sort_by(|a, b| a.1.name.cmp(&b.1.name).then(a.0.cmp(b.0))),
            Some("size") => found.sort_by(|a, b| b.1.size.cmp(&a.1.size).then(a.0.cmp(b.0))),
            _ => found.sort_by(|a, b| b.1.date_ms.cmp(&a.1.date_ms).then(a.0.cmp(b.0))),
        }
        if query.reverse {
            found.reverse();
        }
        let page = found.into_iter().skip(query.offset).take(query.limit.unwrap_or(usize::MAX));
        (page.map(|(id, _)| *id).collect(), total)
    }
}

/// What a person calls a file of this media type and name.
pub fn kind_of(media_type: &str, name: &str) -> &'static str {
    let media_type = media_type.to_ascii_lowercase();
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let by_extension = match extension.as_str() {
        "pdf" => Some("pdf"),
        "doc" | "docx" | "odt" | "rtf" | "pages" => Some("document"),
        "xls" | "xlsx" | "ods" | "csv" | "numbers" => Some("spreadsheet"),
        "ppt" | "pptx" | "odp" | "key" => Some("presentation"),
        "zip" | "7z" | "rar" | "gz" | "tgz" | "tar" | "bz2" | "xz" => Some("archive"),
        "eml" => Some("mail"),
        _ => None,
    };
    match media_type.split_once('/').map_or(media_type.as_str(), |(top, _)| top) {
        _ if media_type == "application/pdf" => "pdf",
        _ if media_type == "message/rfc822" => "mail",
        "image" => "image",
        "audio" => "audio",
        "video" => "video",
        _ if by_extension.is_some() => by_extension.unwrap_or("other"),
        "text" => "text",
        _ if media_type.contains("zip") || media_type.contains("compressed") => "archive",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(index: &mut SearchIndex, i: u32) {
        let kinds = [("image/jpeg", "jpg"), ("application/pdf", "pdf"), ("application/octet-stream", "xlsx")];
        let (media_type, extension) = kinds[i as usize % 3];
        let origin = Origin {
            message_id: format!("<{i}@example.org>"),
            from: format!("sender{}@example.org", i % 100),
            subject: format!("Subject {}", i % 7),
            date: chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(i) * 60, 0).unwrap().to_rfc3339(),
        };
        let name = format!("File {i}.{extension}");
        let fields = Fields { name: &name, media_type, size: u64::from(i) * 10, added_ms: 5, origin: Some(&origin) };
        index.put(id(i), &fields);
    }

    fn id(i: u32) -> [u8; 32] {
        let mut id = [0; 32];
        id[28..].copy_from_slice(&i.to_be_bytes());
        id
    }

    fn index(n: u32) -> SearchIndex {
        let mut index = SearchIndex::default();
        for i in 0..n {
            put(&mut index, i);
        }
        index
    }

    #[test]
    fn fifty_thousand_files_are_searched_by_every_filter_and_paged_in_order() {
        let index = index(50_000);
        let q = |f: fn(&mut FileQuery)| {
            let mut query = FileQuery::default();
            f(&mut query);
            query
        };

        // Newest first, by the mail's date; pages follow each other.
        let (first, total) = index.search(&q(|q| q.limit = Some(50)));
        assert_eq!(total, 50_000);
        assert_eq!(first[0], id(49_999));
        let (second, _) = index.search(&q(|q| {
            q.offset = 50;
            q.limit = Some(50);
        }));
        assert_eq!(second[0], id(49_949));

        let (found, total) = index.search(&q(|q| q.from = Some("SENDER42@".into())));
        assert_eq!(total, 500);
        assert!(found.iter().all(|f| u32::from_be_bytes(f[28..].try_into().unwrap()) % 100 == 42));

        let (_, total) = index.search(&q(|q| q.kind = Some("spreadsheet".into())));
        assert_eq!(total, 16_666, "xlsx by its name");
        let (_, total) = index.search(&q(|q| q.text = Some("subject 3".into())));
        assert_eq!(total, 7143);
        let (found, _) = index.search(&q(|q| q.text = Some("file 12345.".into())));
        assert_eq!(found, vec![id(12_345)]);

        let (found, total) = index.search(&q(|q| {
            q.since_ms = Some(1_700_000_000_000 + 100 * 60_000);
            q.until_ms = Some(1_700_000_000_000 + 110 * 60_000);
            q.sort = Some("name".into());
        }));
        assert_eq!(total, 10);
        assert_eq!(found[0], id(100), "File 100 < File 101 … by name");

        let (largest, _) = index.search(&q(|q| {
            q.sort = Some("size".into());
            q.limit = Some(1);
        }));
        assert_eq!(largest, vec![id(49_999)]);
        let (smallest, _) = index.search(&q(|q| {
            q.sort = Some("size".into());
            q.reverse = true;
            q.limit = Some(1);
        }));
        assert_eq!(smallest, vec![id(0)]);
    }

    #[test]
    fn kinds_read_as_people_say_them() {
        assert_eq!(kind_of("image/png", "logo.png"), "image");
        assert_eq!(kind_of("application/octet-stream", "Q3.xlsx"), "spreadsheet");
        assert_eq!(kind_of("application/pdf", "x"), "pdf");
        assert_eq!(kind_of("text/plain", "notes.txt"), "text");
        assert_eq!(kind_of("text/csv", "export.csv"), "spreadsheet");
        assert_eq!(kind_of("message/rfc822", "fwd.eml"), "mail");
        assert_eq!(kind_of("application/zip", "photos.zip"), "archive");
        assert_eq!(kind_of("application/octet-stream", "data.bin"), "other");
    }
}
