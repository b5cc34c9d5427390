//! [`GuestState`]: what guests themselves wrote about their instance (OpenStack's write-once
//! `password`, GCE guest attributes, …), kept apart from the operator's record so that an admin
//! replace of the record never wipes it.
//!
//! In the store it is one JSON object per instance (collection `state`, keyed by instance id)
//! with one member per dialect; each dialect owns the shape of its member. A guest write is a
//! [`StateWrite`]: set or remove one value at a path inside one dialect's member.

use serde_json::{Map, Value};

use crate::error::Invalid;

/// The guest-owned state of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestState {
    dialects: Map<String, Value>,
}

/// One guest write: `value` at `path` inside `dialect`'s member (`None` removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// The dialect whose member is written, e.g. `"openstack"`.
    pub dialect: String,
    /// Object keys from the dialect's member down to the value; never empty.
    pub path: Vec<String>,
    /// The new value; `None` removes whatever is at `path`.
    pub value: Option<Value>,
    /// Refuse the write when something is already at `path` (write-once values).
    pub only_if_absent: bool,
}

/// Why a [`StateWrite`] was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateWriteError {
    /// `only_if_absent` and a value is already there.
    #[error("a value is already set")]
    AlreadySet,
    /// The path is empty or runs through a value that is not an object.
    #[error("the path does not name an object member")]
    BadPath,
}

impl GuestState {
    /// Decodes the stored form (a JSON object). Errors say the state is corrupt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Invalid> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(dialects)) => Ok(Self { dialects }),
            Ok(_) => Err(Invalid::one("", "corrupt guest state: not a JSON object")),
            Err(error) => Err(Invalid::one("", format!("corrupt guest state: not JSON: {error}"))),
        }
    }

    /// The stored form: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.dialects).expect("a JSON map always serializes")
    }

    /// Whether no dialect has state.
    pub fn is_empty(&self) -> bool {
        self.dialects.is_empty()
    }

    /// One dialect's member, if it has written anything.
    pub fn dialect(&self, name: &str) -> Option<&Map<String, Value>> {
        self.dialects.get(name).and_then(Value::as_object)
    }

    /// The value at `path` inside `dialect`'s member.
    pub fn get(&self, dialect: &str, path: &[&str]) -> Option<&Value> {
        let (last, parents) = path.split_last()?;
        let mut object = self.dialect(dialect)?;
        for key in parents {
            object = object.get(*key)?.as_object()?;
        }
        object.get(*last)
    }

    /// Applies `write`, creating objects along the path; empty objects left by a removal are
    /// pruned so that removing everything gives back the empty state.
    pub fn apply(&mut self, write: &StateWrite) -> Result<(), StateWriteError> {
        let Some((last, parents)) = write.path.split_last() else {
            return Err(StateWriteError::BadPath);
        };
        let mut object = object_at(&mut self.dialects, &write.dialect)?;
        for key in parents {
            object = object_at(object, key)?;
        }
        if write.only_if_absent && object.contains_key(last) {
            return Err(StateWriteError::AlreadySet);
        }
        match &write.value {
            Some(value) => {
                object.insert(last.clone(), value.clone());
            }
            None => {
                object.remove(last);
            }
        }
        prune(&mut self.dialects);
        Ok(())
    }
}

/// The object member `key` of `object`, created empty when absent.
fn object_at<'a>(object: &'a mut Map<String, Value>, key: &str) -> Result<&'a mut Map<String, Value>, StateWriteError> {
    object.entry(key).or_insert_with(|| Value::Object(Map::new())).as_object_mut().ok_or(StateWriteError::BadPath)
}

/// Removes empty objects, depth first.
fn prune(object: &mut Map<String, Value>) {
    object.retain(|_, value| match value {
        Value::Object(inner) => {
            prune(inner);
            !inner.is_empty()
        }
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(path: &[&str], value: Option<Value>, only_if_absent: bool) -> StateWrite {
        StateWrite {
            dialect: "gce".into(),
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            value,
            only_if_absent,
        }
    }

    #[test]
    fn writes_create_the_path_and_removals_prune_it() {
        let mut state = GuestState::default();
        state.apply(&write(&["guest-attributes", "ns", "k"], Some(json!("v")), false)).unwrap();
        assert_eq!(state.get("gce", &["guest-attributes", "ns", "k"]), Some(&json!("v")));
        assert_eq!(GuestState::from_bytes(&state.to_bytes()).unwrap(), state);
        state.apply(&write(&["guest-attributes", "ns", "k"], None, false)).unwrap();
        assert!(state.is_empty(), "{state:?}");
    }

    #[test]
    fn write_once_values_refuse_a_second_write() {
        let mut state = GuestState::default();
        state.apply(&write(&["password"], Some(json!("a")), true)).unwrap();
        assert_eq!(state.apply(&write(&["password"], Some(json!("b")), true)), Err(StateWriteError::AlreadySet));
        assert_eq!(state.get("gce", &["password"]), Some(&json!("a")));
    }

    #[test]
    fn paths_through_a_value_and_empty_paths_are_refused() {
        let mut state = GuestState::default();
        state.apply(&write(&["a"], Some(json!("leaf")), false)).unwrap();
        assert_eq!(state.apply(&write(&["a", "b"], Some(json!(1)), false)), Err(StateWriteError::BadPath));
        assert_eq!(state.apply(&write(&[], Some(json!(1)), false)), Err(StateWriteError::BadPath));
        assert!(GuestState::from_bytes(b"[1]").is_err());
    }
}
