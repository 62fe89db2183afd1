//! The connection string: parsed with tokio-postgres, and shown without its
//! password.

use std::fmt::Write as _;
use std::str::FromStr;

use tokio_postgres::config::Host;

use crate::PostgresError;

/// Parses `url`, a libpq key/value string (`host=127.0.0.1 user=postgres`)
/// or a URL (`postgres://user:secret@host/db`).
pub(crate) fn parse(url: &str) -> Result<tokio_postgres::Config, PostgresError> {
    let config = tokio_postgres::Config::from_str(url).map_err(|error| {
        // The parser's messages name options, never values, except for
        // "unexpected character ... but got `c`", which could show a
        // character of the password: keep only what precedes it.
        let reason = match std::error::Error::source(&error) {
            Some(source) => {
                let text = source.to_string();
                let text = text.split(": expected").next().unwrap_or_default();
                format!("{error}: {text}")
            }
            None => error.to_string(),
        };
        PostgresError::Url { reason }
    })?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(PostgresError::Url {
            reason: "no host given (add `host=...` or use `postgres://host/...`)".to_owned(),
        });
    }
    Ok(config)
}

/// The server a config connects to, as `host=… port=… user=… dbname=…`,
/// without the password or any other option.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let mut text = String::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .chain(config.get_hostaddrs().iter().map(ToString::to_string))
        .collect();
    let _ = write!(text, "host={}", hosts.join(","));
    let ports: Vec<String> = config.get_ports().iter().map(ToString::to_string).collect();
    let _ = write!(
        text,
        " port={}",
        if ports.is_empty() {
            "5432".to_owned()
        } else {
            ports.join(",")
        }
    );
    if let Some(user) = config.get_user() {
        let _ = write!(text, " user={user}");
    }
    if let Some(dbname) = config.get_dbname() {
        let _ = write!(text, " dbname={dbname}");
    }
    text
}

/// `url` as the sink shows it in `Debug`, errors and `tidings check`:
/// `host=… port=… user=… dbname=…`, never its password or other options. A
/// string that does not parse shows as `<invalid connection string>`.
///
/// ```
/// use tidings_sink_postgres::redacted;
///
/// assert_eq!(
///     redacted("postgres://app:s3cret@db.internal:5433/events"),
///     "host=db.internal port=5433 user=app dbname=events"
/// );
/// assert_eq!(
///     redacted("host=127.0.0.1 user=postgres password=s3cret dbname=test"),
///     "host=127.0.0.1 port=5432 user=postgres dbname=test"
/// );
/// ```
#[must_use]
pub fn redacted(url: &str) -> String {
    match parse(url) {
        Ok(config) => describe(&config),
        Err(_) => "<invalid connection string>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_option_and_never_show_the_password() {
        for url in [
            "host=127.0.0.1 password=se cret",
            "host=127.0.0.1 password='s3cret",
            "postgres://user:s3cret@[::1/db",
            "host=127.0.0.1 port=s3cret",
            "password=s3cret",
        ] {
            let error = parse(url).unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("invalid option `url`: "), "{text}");
            for secret in ["s3cret", "cret`"] {
                assert!(!text.contains(secret), "{url:?} gave {text}");
            }
            assert_eq!(error.option(), Some("url"));
        }
        assert!(
            parse("password=s3cret")
                .unwrap_err()
                .to_string()
                .contains("no host given")
        );
    }

    #[test]
    fn descriptions_keep_server_user_and_database_only() {
        assert_eq!(
            redacted("host=/run/postgresql,10.0.0.2 port=5432,5433 user=u dbname=d password=p"),
            "host=/run/postgresql,10.0.0.2 port=5432,5433 user=u dbname=d"
        );
        assert_eq!(
            redacted("postgresql://localhost"),
            "host=localhost port=5432"
        );
        assert_eq!(redacted("nonsense"), "<invalid connection string>");
    }
}
