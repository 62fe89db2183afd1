//! serde's messages in the words of a config file's author.

/// What a serde message said, sorted out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Explained {
    /// A key the table does not take; `message` lists the ones it does.
    UnknownKey { key: String, message: String },
    /// A required key is absent.
    Missing { key: String },
    /// Anything else, in plain words.
    Other(String),
}

impl Explained {
    pub(crate) fn message(&self) -> String {
        match self {
            Self::UnknownKey { message, .. } | Self::Other(message) => message.clone(),
            Self::Missing { key } => format!("the required key `{key}` is missing"),
        }
    }
}

/// Sorts out serde's `message` about the entry `key` (its last key), for a
/// table that also takes `also_allowed`.
pub(crate) fn explain(message: &str, key: Option<&str>, also_allowed: &[&str]) -> Explained {
    // toml adds `in `key`` lines that repeat the path.
    let message = message
        .lines()
        .filter(|line| !line.trim_start().starts_with("in `"))
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let mut keys = quoted(expected, '`');
        for extra in also_allowed {
            if !keys.iter().any(|k| k == extra) {
                keys.push((*extra).to_owned());
            }
        }
        let suggestion = did_you_mean(field, keys.iter().map(String::as_str), |k| format!("`{k}`"));
        let list = if keys.is_empty() {
            " This table takes no keys.".to_owned()
        } else {
            format!(" The keys here are: {}", keys.join(", "))
        };
        return Explained::UnknownKey {
            key: field.to_owned(),
            message: format!("unknown key `{field}`{suggestion}{list}"),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return Explained::Missing {
            key: field.to_owned(),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((variant, expected)) = rest.split_once('`')
    {
        let values = quoted(expected, '`');
        let suggestion = did_you_mean(variant, values.iter().map(String::as_str), |v| {
            format!("{v:?}")
        });
        let values: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        return Explained::Other(format!(
            "unknown value {variant:?}{suggestion} Expected one of: {}",
            values.join(", ")
        ));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            return Explained::Other(format!(
                "expected {}, found {}",
                wanted(expected, key),
                what_was_found(found)
            ));
        }
    }
    Explained::Other(message.to_owned())
}

/// The words between each pair of `quote`s in `text`.
fn quoted(text: &str, quote: char) -> Vec<String> {
    text.split(quote)
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// What serde's "expected ..." means, for the entry `key`.
fn wanted(expected: &str, key: Option<&str>) -> String {
    let unit = |kind: &str, like_plain: &str| {
        let key = key.unwrap_or("");
        let (unit, like) = if key.ends_with("_ms") {
            (" of milliseconds", "500")
        } else if key.ends_with("_seconds") || key.ends_with("_secs") {
            (" of seconds", "60")
        } else if key.ends_with("_bytes") {
            (" of bytes", "1048576")
        } else {
            ("", like_plain)
        };
        format!("{kind}{unit}, like {like}")
    };
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "a nonnegative integer" => {
            unit("a whole number", "100")
        }
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "an integer" => {
            unit("a whole number", "100")
        }
        "f32" | "f64" | "a float" => unit("a number", "1.5"),
        "a boolean" => "true or false".to_owned(),
        "a string" => "a string in quotes".to_owned(),
        "a character" => "a single character in quotes".to_owned(),
        "a sequence" => "a list, like [\"a\", \"b\"]".to_owned(),
        "a map" | "map" => "a table".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    }
}

/// What serde's "invalid type: ..." found, in plain words.
fn what_was_found(found: &str) -> String {
    let inner = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|rest| rest.trim_matches('`').to_owned())
    };
    if let Some(text) = found.strip_prefix("string ") {
        format!("the string {text}")
    } else if let Some(number) = inner("integer ").or_else(|| inner("floating point ")) {
        format!("the number {number}")
    } else if let Some(boolean) = inner("boolean ") {
        boolean
    } else if let Some(character) = inner("character ") {
        format!("the character {character:?}")
    } else {
        match found {
            "sequence" => "a list".to_owned(),
            "map" => "a table".to_owned(),
            other => other.to_owned(),
        }
    }
}

/// `; did you mean X?` with the candidate nearest to `word` written by
/// `quote`, or `.` when none is near: the end of a sentence such as
/// ``unknown key `max_evnts` ``, before the list of what is valid.
///
/// ```
/// let keys = ["path", "roll_events"];
/// let quote = |k: &str| format!("`{k}`");
/// assert_eq!(tidings_toml::did_you_mean("roll_evnts", keys, quote), "; did you mean `roll_events`?");
/// assert_eq!(tidings_toml::did_you_mean("colour", keys, quote), ".");
/// ```
#[must_use]
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    quote: fn(&str) -> String,
) -> String {
    nearest(word, candidates).map_or_else(
        || ".".to_owned(),
        |near| format!("; did you mean {}?", quote(near)),
    )
}

/// The candidate nearest to `word`, if one is near enough to be what was
/// meant (a typo or two, depending on the word's length).
///
/// ```
/// let keys = ["path", "roll_seconds", "roll_events", "max_events"];
/// assert_eq!(tidings_toml::nearest("max_evnts", keys), Some("max_events"));
/// assert_eq!(tidings_toml::nearest("roll_evnts", keys), Some("roll_events"));
/// assert_eq!(tidings_toml::nearest("colour", keys), None);
/// ```
#[must_use]
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|candidate| {
            let (word, lower) = (word.to_ascii_lowercase(), candidate.to_ascii_lowercase());
            // A short form (`int` for `integer`) counts as one typo.
            let distance = if word.len() >= 3 && lower.starts_with(&word) {
                1
            } else {
                strsim::damerau_levenshtein(&word, &lower)
            };
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(message: &str, key: Option<&str>) -> String {
        explain(message, key, &[]).message()
    }

    #[test]
    fn types_in_plain_words_with_units_from_the_key() {
        assert_eq!(
            said(
                "invalid type: string \"x\", expected u64\nin `roll_seconds`\n",
                Some("roll_seconds")
            ),
            "expected a whole number of seconds, like 60, found the string \"x\""
        );
        assert_eq!(
            said(
                "invalid value: integer `-1`, expected u64",
                Some("flush_interval_ms")
            ),
            "expected a whole number of milliseconds, like 500, found the number -1"
        );
        assert_eq!(
            said(
                "invalid type: floating point `1.5`, expected usize",
                Some("max_bytes")
            ),
            "expected a whole number of bytes, like 1048576, found the number 1.5"
        );
        assert_eq!(
            said("invalid type: integer `3`, expected a boolean", Some("pii")),
            "expected true or false, found the number 3"
        );
        assert_eq!(
            said(
                "invalid type: boolean `true`, expected a sequence",
                Some("patterns")
            ),
            "expected a list, like [\"a\", \"b\"], found true"
        );
        assert_eq!(
            said(
                "invalid type: sequence, expected struct Retry",
                Some("retry")
            ),
            "expected a table, found a list"
        );
        assert_eq!(
            said("invalid type: map, expected a string", None),
            "expected a string in quotes, found a table"
        );
        assert_eq!(
            said("invalid type: string \"1\", expected f64", Some("rate")),
            "expected a number, like 1.5, found the string \"1\""
        );
        assert_eq!(
            said("invalid type: character `c`, expected i64", Some("n")),
            "expected a whole number, like 100, found the character \"c\""
        );
        assert_eq!(said("something custom\nin `x`", None), "something custom");
        // What serde's visitor says it expects, kept when it is already words.
        assert_eq!(
            said(
                "invalid type: integer `1`, expected \"none\" or a table",
                Some("retry")
            ),
            "expected \"none\" or a table, found the number 1"
        );
    }

    #[test]
    fn unknown_keys_list_every_key_and_the_nearest() {
        let explained = explain(
            "unknown field `max_evnts`, expected one of `path`, `roll_events`",
            Some("max_evnts"),
            &["max_events", "path"],
        );
        assert_eq!(
            explained,
            Explained::UnknownKey {
                key: "max_evnts".into(),
                message: "unknown key `max_evnts`; did you mean `max_events`? \
                          The keys here are: path, roll_events, max_events"
                    .into()
            }
        );
        assert_eq!(
            said("unknown field `zzz`, expected `path`", None),
            "unknown key `zzz`. The keys here are: path"
        );
        assert_eq!(
            said("unknown field `zzz`, there are no fields", None),
            "unknown key `zzz`. This table takes no keys."
        );
    }

    #[test]
    fn unknown_values_and_missing_keys() {
        assert_eq!(
            said(
                "unknown variant `drop_newst`, expected one of `backpressure`, `drop_newest`",
                Some("when_full")
            ),
            "unknown value \"drop_newst\"; did you mean \"drop_newest\"? \
             Expected one of: \"backpressure\", \"drop_newest\""
        );
        assert_eq!(
            said("unknown variant `zz`, expected `json`", None),
            "unknown value \"zz\". Expected one of: \"json\""
        );
        assert_eq!(
            explain("missing field `path`", None, &[]),
            Explained::Missing { key: "path".into() }
        );
        assert_eq!(
            said("missing field `path`", None),
            "the required key `path` is missing"
        );
    }

    #[test]
    fn nearest_needs_the_word_to_be_close() {
        assert_eq!(nearest("typ", ["type", "path"]), Some("type"));
        assert_eq!(nearest("x", ["type", "a"]), Some("a"));
        assert_eq!(nearest("queue", ["url", "type"]), None);
        assert_eq!(nearest("MAX_EVENTS", ["max_events"]), Some("max_events"));
        assert_eq!(nearest("patern", ["patterns", "pattern"]), Some("pattern"));
        assert_eq!(nearest("int", ["string", "integer"]), Some("integer"));
        assert_eq!(nearest("in", ["integer"]), None);
        // Short words allow one typo, middling ones two, long ones three.
        assert_eq!(nearest("ab", ["xb"]), Some("xb"));
        assert_eq!(nearest("ab", ["xyz"]), None);
        assert_eq!(nearest("abcdef", ["abxdyf"]), Some("abxdyf"));
        assert_eq!(nearest("abcdef", ["abcxyz"]), None);
        assert_eq!(nearest("abcdefghij", ["abcdefgxyz"]), Some("abcdefgxyz"));
        assert_eq!(nearest("anything", std::iter::empty()), None);
    }
}
