//! Reading a request body as JSON, strictly: what serde_json accepts, minus what it lets pass
//! silently. A key given twice is refused (serde_json keeps the last one, so two parsers in a
//! chain may disagree about what was asked), and so is nesting deeper than any eshop body needs
//! (a value nested past serde_json's own limit of 128 can be stored in Postgres but never read
//! back).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The deepest nesting of arrays and objects a body may have.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all; the parser's message without its position.
    Malformed(String),
    /// This key appears twice in one object.
    DuplicateKey(String),
    TooDeep,
}

/// Parses `bytes` as one JSON value, refusing duplicate keys and nesting beyond `MAX_DEPTH`.
pub fn parse(bytes: &[u8]) -> Result<Value, BodyError> {
    let failure = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        depth: 0,
        failure: &failure,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => Err(failure.into_inner().unwrap_or_else(|| {
            BodyError::Malformed(
                error
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            )
        })),
    }
}

struct StrictValue<'a> {
    depth: usize,
    failure: &'a RefCell<Option<BodyError>>,
}

impl StrictValue<'_> {
    fn fail<E: de::Error>(&self, failure: BodyError) -> E {
        let message = format!("{failure:?}");
        *self.failure.borrow_mut() = Some(failure);
        E::custom(message)
    }

    fn nested<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(BodyError::TooDeep));
        }
        Ok(StrictValue {
            depth: self.depth + 1,
            failure: self.failure,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = items.next_element_seed(self.nested()?)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let value = entries.next_value_seed(self.nested()?)?;
            if members.contains_key(&key) {
                return Err(self.fail(BodyError::DuplicateKey(key)));
            }
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_serde_json_accepts() {
        let text = r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {}}}"#;
        assert_eq!(
            parse(text.as_bytes()),
            Ok(serde_json::from_str::<Value>(text).expect("json"))
        );
    }

    #[test]
    fn refuses_a_key_given_twice_at_any_depth() {
        assert_eq!(
            parse(br#"{"amount_cents": 1, "amount_cents": 2}"#),
            Err(BodyError::DuplicateKey("amount_cents".into()))
        );
        assert_eq!(
            parse(br#"{"a": [{"b": 1, "b": 1}]}"#),
            Err(BodyError::DuplicateKey("b".into()))
        );
    }

    #[test]
    fn refuses_deep_nesting_and_garbage() {
        let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert_eq!(parse(deep.as_bytes()), Err(BodyError::TooDeep));
        let fits = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(fits.as_bytes()).is_ok());
        assert!(matches!(parse(b"{\"a\": "), Err(BodyError::Malformed(_))));
        assert!(matches!(parse(b"{} {}"), Err(BodyError::Malformed(_))));
    }
}
