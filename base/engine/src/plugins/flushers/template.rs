//! Destination templates of outputs (`flusher_file`'s `FilePath`, `flusher_http`'s
//! `RemoteURL`): text with chunk-key placeholders and strftime fields.
//!
//! `${tag}` is the chunk's tag and `${<field>}` the value of a field chunk key (see
//! [`ChunkKey::value`]); `%Y`, `%m`, `%d`, `%H`, `%M`, `%S` and chrono's other strftime
//! fields are the chunk's time. A placeholder the chunk key has no value for (its name is
//! not a chunk key of the config) is left as the literal text `${name}`, so what is written
//! still lands somewhere visible. Placeholder values are inserted as they are, never read as
//! strftime fields.

use crate::api::ChunkKey;
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, Utc};
use std::fmt::Write as _;

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    /// Text without strftime fields.
    Text(String),
    /// Text with strftime fields, parsed.
    Time(Vec<Item<'static>>),
    /// `${name}`.
    Placeholder(String),
}

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    /// What is wrong: an unclosed `${`, an empty placeholder name or one with `$`/`{` in
    /// it, or an unknown strftime field.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (literal, after) = match rest.find("${") {
                Some(i) => (&rest[..i], Some(&rest[i + 2..])),
                None => (rest, None),
            };
            if !literal.is_empty() {
                parts.push(literal_part(literal)?);
            }
            let Some(after) = after else { break };
            let Some(end) = after.find('}') else {
                return Err(format!("unclosed `${{` in {text:?}"));
            };
            let name = &after[..end];
            if name.is_empty() {
                return Err(format!("empty placeholder `${{}}` in {text:?}"));
            }
            if name.contains(['$', '{']) {
                return Err(format!("bad placeholder name {name:?} in {text:?}"));
            }
            parts.push(Part::Placeholder(name.to_string()));
            rest = &after[end + 1..];
        }
        Ok(Template { parts })
    }

    /// The names of the placeholders, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Renders the template for a chunk with key `key` and time `at_unix_secs` (in UTC, or
    /// in the local time zone when `local`); values are inserted as UTF-8 (lossily).
    pub(crate) fn render(&self, key: &ChunkKey, at_unix_secs: i64, local: bool) -> String {
        self.render_with(key, at_unix_secs, local, |v, out| {
            out.push_str(&String::from_utf8_lossy(v))
        })
    }

    /// Like [`Template::render`], with `value` writing each placeholder value to the output
    /// (to escape it for a path or a URL).
    pub(crate) fn render_with(
        &self,
        key: &ChunkKey,
        at_unix_secs: i64,
        local: bool,
        mut value: impl FnMut(&[u8], &mut String),
    ) -> String {
        let mut out = String::new();
        let mut time: Option<DateTime<Utc>> = None;
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(name) => match key.value(name) {
                    Some(v) => value(v, &mut out),
                    None => {
                        let _ = write!(out, "${{{name}}}");
                    }
                },
                Part::Time(items) => {
                    let at = *time.get_or_insert_with(|| {
                        DateTime::from_timestamp(at_unix_secs, 0).unwrap_or_default()
                    });
                    // The items were checked at parse time: formatting them cannot fail.
                    let _ = if local {
                        let at = at.with_timezone(&Local);
                        write!(out, "{}", at.format_with_items(items.iter()))
                    } else {
                        write!(out, "{}", at.format_with_items(items.iter()))
                    };
                }
            }
        }
        out
    }
}

fn literal_part(text: &str) -> Result<Part, String> {
    if !text.contains('%') {
        return Ok(Part::Text(text.to_string()));
    }
    StrftimeItems::new(text)
        .parse_to_owned()
        .map(Part::Time)
        .map_err(|_| format!("bad strftime field in {text:?} (`%%` is a literal `%`)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn key() -> ChunkKey {
        ChunkKey {
            tag: Some(Bytes::from_static(b"app.web")),
            time: None,
            fields: vec![("host".into(), Bytes::from_static(b"h%Y1"))],
        }
    }

    #[test]
    fn renders_placeholders_and_time_and_leaves_unknown_names_literal() {
        let t = Template::parse("/logs/%Y-%m-%d/${tag}/${host}-%H%M%S.${nope}.log%%").unwrap();
        assert_eq!(t.names().collect::<Vec<_>>(), ["tag", "host", "nope"]);
        // 2024-02-29T13:14:15Z
        let path = t.render(&key(), 1_709_212_455, false);
        assert_eq!(path, "/logs/2024-02-29/app.web/h%Y1-131415.${nope}.log%");
        let no_tag = ChunkKey::default();
        assert_eq!(
            Template::parse("a-${tag}")
                .unwrap()
                .render(&no_tag, 0, true),
            "a-${tag}"
        );
    }

    #[test]
    fn render_with_escapes_values_only() {
        let t = Template::parse("/x/${tag}/y").unwrap();
        let s = t.render_with(&key(), 0, false, |v, out| {
            out.push_str(&String::from_utf8_lossy(v).replace('.', "_"))
        });
        assert_eq!(s, "/x/app_web/y");
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in ["a${tag", "a${}b", "${a${b}}", "x-%Q", "trailing %"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(Template::parse("")
            .unwrap()
            .render(&key(), 0, false)
            .is_empty());
        assert!(Template::parse("$ {x} $x }").is_ok());
    }
}
