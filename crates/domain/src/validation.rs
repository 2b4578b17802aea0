//! The error every value type returns when raw input is refused.

use std::fmt;

/// Raw input that does not make a valid value, naming the field it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// The field, as the client named it (`phone`, `tags[2]`, `limit`).
    pub field: String,
    /// A sentence saying what a valid value looks like.
    pub message: String,
}

impl ValidationError {
    /// A refusal of `field`.
    #[must_use]
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Checks a free-text field's length in characters, trimming nothing.
///
/// # Errors
/// When the text has fewer than `min` or more than `max` characters.
pub fn text_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ValidationError::new(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Ok(())
}
