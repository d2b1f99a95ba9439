//! [`Text`]: the string type of the snapshot model, shared rather than copied.
//!
//! A catalog of 100,000 tables holds over a million column names and type names, and most of
//! them repeat (`id`, `created_at`, `text`, `bigint`). Discovery keeps one copy of each repeated
//! name ([`Interner`]) and every column refers to it; a clone is a reference count, not an
//! allocation. On the wire a `Text` is a plain JSON string.
//!
//! A `Text` is one pointer wide (`arcstr::ArcStr` keeps the length beside the count, in the
//! allocation `Arc<str>` also makes), and so is an `Option<Text>`: a column's four strings take
//! 32 bytes instead of 64, which is 38 MB over the 1.2 million columns of 100,000 tables.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;

use arcstr::ArcStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable, cheaply cloned string: 8 bytes, against `String`'s 24 plus its own allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(ArcStr);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Text {
    /// The empty string (one shared copy: allocates nothing).
    fn default() -> Text {
        Text(ArcStr::new())
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    /// As `str` does, width and alignment included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(ArcStr::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(ArcStr::from(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text(ArcStr::from(s.as_str()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0.to_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        **self == *other.0
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl serde::de::Visitor<'_> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(READING.with(|r| match r.borrow_mut().as_mut() {
            Some(interner) => interner.text(s),
            None => Text::from(s),
        }))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Text, E> {
        self.visit_str(&s)
    }
}

thread_local! {
    /// The interner of the snapshot being read on this thread ([`reading`]), if any.
    static READING: RefCell<Option<Interner>> = const { RefCell::new(None) };
}

/// Runs `read` (a deserialization of a snapshot) with repeated strings shared, as discovery
/// shares them: a snapshot read back takes as little memory as one just discovered.
pub(crate) fn reading<T>(read: impl FnOnce() -> T) -> T {
    struct Reset(Option<Interner>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            READING.with(|r| *r.borrow_mut() = previous);
        }
    }
    let _reset = Reset(READING.with(|r| r.borrow_mut().replace(Interner::default())));
    read()
}

/// Keeps one copy of each short string handed to it.
#[derive(Default)]
pub(crate) struct Interner(HashSet<Text>);

impl Interner {
    /// Strings longer than this (comments, expressions) are rarely repeated: not worth keeping.
    const LONGEST: usize = 64;

    /// The shared copy of `s`.
    pub(crate) fn text(&mut self, s: &str) -> Text {
        if s.len() > Self::LONGEST {
            return Text::from(s);
        }
        if let Some(t) = self.0.get(s) {
            return t.clone();
        }
        let t = Text::from(s);
        self.0.insert(t.clone());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_and_an_absent_one_are_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Option<Text>>(), std::mem::size_of::<usize>());
        // A column: four strings, a boxed generation expression and three one-byte fields.
        assert!(std::mem::size_of::<super::super::Column>() <= 6 * std::mem::size_of::<usize>());
        assert_eq!(Text::default(), "");
    }

    #[test]
    fn interned_strings_are_shared_and_long_ones_are_not_kept() {
        let mut i = Interner::default();
        let a = i.text("created_at");
        let b = i.text("created_at");
        assert!(ArcStr::ptr_eq(&a.0, &b.0));
        let long = "x".repeat(Interner::LONGEST + 1);
        assert!(!ArcStr::ptr_eq(&i.text(&long).0, &i.text(&long).0));
        assert_eq!(i.0.len(), 1);
    }

    #[test]
    fn text_is_a_plain_json_string_and_reads_back_shared_while_reading() {
        let t = Text::from("a \"quoted\" name");
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(json, serde_json::to_string("a \"quoted\" name").expect("json"));
        let (x, y): (Text, Text) = reading(|| serde_json::from_str(r#"["id","id"]"#)).expect("read");
        assert!(ArcStr::ptr_eq(&x.0, &y.0));
        let (x, y): (Text, Text) = serde_json::from_str(r#"["id","id"]"#).expect("read");
        assert!(!ArcStr::ptr_eq(&x.0, &y.0), "no interner outside `reading`");
        assert_eq!(x, "id");
        assert_eq!(format!("[{x:<4}]"), "[id  ]", "padding applies");
        assert!(serde_json::from_str::<Text>("3").is_err());
    }
}
