//! `SubjectTemplate`: the subject of each event, from a template such as
//! `events.{name}`, with event names made safe for NATS subjects.

use std::fmt;

use crate::NatsError;

/// The placeholder replaced by the event name.
const NAME: &str = "{name}";

/// The name substituted when a template is checked.
const SAMPLE: &str = "sample";

/// The subject each event is published to, from a template in which
/// `{name}` stands for the event name (`events.{name}` publishes
/// `page.view` to `events.page.view`).
///
/// Event names may contain what NATS subjects cannot: each whitespace or
/// control character, `*` and `>` in a name becomes `_`, and an empty token
/// (a name starting or ending with `.`, or with `..` inside) becomes `_`, so
/// `"page view"` goes to `events.page_view` and `"a..b"` to `events.a._b`.
/// Dots in a name stay token separators, so a stream on `events.>` captures
/// every name.
///
/// ```
/// use tidings_sink_nats::SubjectTemplate;
///
/// let template = SubjectTemplate::new("events.{name}")?;
/// assert_eq!(template.render("page view"), "events.page_view");
/// assert_eq!(template.render("nav.request"), "events.nav.request");
/// assert_eq!(template.stream_subject()?, "events.>");
/// # Ok::<(), tidings_sink_nats::NatsError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    template: String,
}

impl fmt::Debug for SubjectTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.template, f)
    }
}

impl fmt::Display for SubjectTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

impl SubjectTemplate {
    /// Checks `template`: it must not be empty, and with a sample name in
    /// place of `{name}` it must be a valid subject to publish to (no
    /// whitespace, no wildcards `*` or `>`, no empty tokens, no other
    /// `{...}` placeholder).
    ///
    /// # Errors
    ///
    /// [`NatsError::InvalidSubject`] saying what is wrong.
    pub fn new(template: impl Into<String>) -> Result<Self, NatsError> {
        let template = template.into();
        let invalid = |reason: &str| NatsError::InvalidSubject {
            template: template.clone(),
            reason: reason.to_owned(),
        };
        if template.is_empty() {
            return Err(invalid("it is empty"));
        }
        let sample = template.replace(NAME, SAMPLE);
        if sample.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace or control characters"));
        }
        if sample.contains(['*', '>']) {
            return Err(invalid(
                "it contains a wildcard (`*` or `>`), which cannot be published to",
            ));
        }
        if sample.contains(['{', '}']) {
            return Err(invalid("the only placeholder is `{name}`"));
        }
        if sample.split('.').any(str::is_empty) {
            return Err(invalid(
                "it has an empty token (a leading or trailing `.`, or `..`)",
            ));
        }
        Ok(Self { template })
    }

    /// The template as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The subject for an event named `name`, sanitised as described on
    /// [`SubjectTemplate`].
    #[must_use]
    pub fn render(&self, name: &str) -> String {
        if !self.template.contains(NAME) {
            return self.template.clone();
        }
        self.template.replace(NAME, &sanitise(name))
    }

    /// The subject a stream must capture to receive every event published
    /// with this template: the fixed tokens before the one holding
    /// `{name}`, then `>` (`events.{name}` → `events.>`), or the template
    /// itself when it has no `{name}`.
    ///
    /// # Errors
    ///
    /// [`NatsError::InvalidSubject`] when `{name}` is in the first token, so
    /// no stream subject short of `>` (every subject) would do.
    pub fn stream_subject(&self) -> Result<String, NatsError> {
        let tokens: Vec<&str> = self.template.split('.').collect();
        match tokens.iter().position(|t| t.contains(NAME)) {
            None => Ok(self.template.clone()),
            Some(0) => Err(NatsError::InvalidSubject {
                template: self.template.clone(),
                reason: "a stream can only be created when a fixed token comes before `{name}` \
                         (such as `events.{name}`)"
                    .to_owned(),
            }),
            Some(at) => Ok(format!("{}.>", tokens[..at].join("."))),
        }
    }

    /// The subject of a sample event, used to find the stream that
    /// captures the template.
    pub(crate) fn sample(&self) -> String {
        self.render(SAMPLE)
    }
}

/// Makes an event name safe inside a subject: whitespace, control
/// characters, `*` and `>` become `_`, and so does each empty token.
fn sanitise(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || c == '*' || c == '>' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if !clean.split('.').any(str::is_empty) {
        return clean;
    }
    clean
        .split('.')
        .map(|token| if token.is_empty() { "_" } else { token })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_into_valid_subjects() {
        let t = SubjectTemplate::new("events.{name}").unwrap();
        assert_eq!(t.render("page.view"), "events.page.view");
        assert_eq!(t.render("page view"), "events.page_view");
        assert_eq!(t.render("a*b>c"), "events.a_b_c");
        assert_eq!(t.render("*"), "events._");
        assert_eq!(t.render(">"), "events._");
        assert_eq!(t.render(".a..b."), "events._.a._.b._");
        assert_eq!(t.render("tab\there"), "events.tab_here");
        assert_eq!(t.render("ünïcode"), "events.ünïcode");
        let t = SubjectTemplate::new("app-{name}-v1").unwrap();
        assert_eq!(t.render("x y"), "app-x_y-v1");
        let fixed = SubjectTemplate::new("all.events").unwrap();
        assert_eq!(fixed.render("anything at all"), "all.events");
    }

    #[test]
    fn invalid_templates_are_refused_with_the_reason() {
        for (template, reason) in [
            ("", "empty"),
            ("events {name}", "whitespace"),
            ("events.*", "wildcard"),
            ("events.>", "wildcard"),
            ("events.{name", "placeholder"),
            ("events.{id}", "placeholder"),
            (".events.{name}", "empty token"),
            ("events..{name}", "empty token"),
            ("events.{name}.", "empty token"),
        ] {
            let error = SubjectTemplate::new(template).unwrap_err().to_string();
            assert!(error.contains(reason), "{template:?}: {error}");
            assert!(error.contains(&format!("{template:?}")), "{error}");
        }
    }

    #[test]
    fn stream_subjects_cover_the_template() {
        let subject = |t: &str| SubjectTemplate::new(t).unwrap().stream_subject();
        assert_eq!(subject("events.{name}").unwrap(), "events.>");
        assert_eq!(subject("a.b.{name}.v1").unwrap(), "a.b.>");
        assert_eq!(subject("a.pre-{name}").unwrap(), "a.>");
        assert_eq!(subject("fixed.subject").unwrap(), "fixed.subject");
        assert!(subject("{name}.events").is_err());
        assert!(subject("x{name}").is_err());
    }
}
