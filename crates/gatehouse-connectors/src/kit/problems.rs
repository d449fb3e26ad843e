//! Collecting every configuration error of a section, not only the first.

use gatehouse_config::{ConfigError, ConfigErrors};

/// The errors found so far while compiling one section.
#[derive(Debug, Default)]
pub struct Problems(Vec<ConfigError>);

impl Problems {
    /// No error yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value, or records the error and gives `None`.
    pub fn check<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// Like [`Problems::check`], for steps that report several errors.
    pub fn check_all<T>(&mut self, r: Result<T, ConfigErrors>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.0);
                None
            }
        }
    }

    /// Records an error.
    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }

    /// True when nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(v)` when no error was recorded and `v` is there; every recorded
    /// error otherwise.
    pub fn finish<T>(self, v: Option<T>) -> Result<T, ConfigErrors> {
        match v {
            Some(v) if self.0.is_empty() => Ok(v),
            _ if self.0.is_empty() => Err(ConfigErrors(vec![ConfigError::new(
                "",
                "incomplete section (an earlier step failed without saying why)",
            )])),
            _ => Err(ConfigErrors(self.0)),
        }
    }
}
