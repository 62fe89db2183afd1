//! Routing key templates: literal text with `{name}` replaced by the event
//! name, checked once when the sink is built.

/// The placeholder a template may contain.
const NAME: &str = "{name}";

/// A parsed routing key template such as `events.{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutingKeyTemplate {
    /// The literal pieces around the placeholders: `parts.len()` is the
    /// number of placeholders plus one.
    parts: Vec<String>,
}

impl RoutingKeyTemplate {
    /// Parses `template`; any brace other than in `{name}` is an error.
    pub(crate) fn parse(template: &str) -> Result<Self, String> {
        let parts: Vec<String> = template.split(NAME).map(str::to_owned).collect();
        if let Some(part) = parts.iter().find(|p| p.contains(['{', '}'])) {
            return Err(format!(
                "only the placeholder {NAME} is supported, found a brace in {part:?}"
            ));
        }
        Ok(Self { parts })
    }

    /// The routing key for an event named `name`.
    pub(crate) fn render(&self, name: &str) -> String {
        let mut key =
            String::with_capacity(self.parts.iter().map(String::len).sum::<usize>() + name.len());
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                key.push_str(name);
            }
            key.push_str(part);
        }
        key
    }

    /// The length of the key without any name: the part no event can shorten.
    pub(crate) fn literal_len(&self) -> usize {
        self.parts.iter().map(String::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_placeholders_are_replaced_and_the_rest_kept() {
        let t = RoutingKeyTemplate::parse("events.{name}").unwrap();
        assert_eq!(t.render("user.signup"), "events.user.signup");
        let t = RoutingKeyTemplate::parse("{name}.{name}").unwrap();
        assert_eq!(t.render("a"), "a.a");
        let t = RoutingKeyTemplate::parse("fixed").unwrap();
        assert_eq!(t.render("ignored"), "fixed");
        assert_eq!(t.literal_len(), 5);
        assert_eq!(RoutingKeyTemplate::parse("").unwrap().render("x"), "");
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        assert!(RoutingKeyTemplate::parse("events.{id}").is_err());
        assert!(RoutingKeyTemplate::parse("events.{name").is_err());
        assert!(RoutingKeyTemplate::parse("events.name}").is_err());
    }
}
