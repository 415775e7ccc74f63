//! Concrete locations inside an object, and their JSON-pointer (RFC 6901) spelling.
//!
//! Paths are kept as unescaped segments until the last moment so that no code concatenates
//! pointer strings by hand: an annotation key such as `kube2hadoop.io/user` must become
//! `kube2hadoop.io~1user`, and a map key written by a user may contain `~` or `/`.
use jsonptr::{PointerBuf, Token};
use std::fmt;

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A key of an object.
    Key(String),
    /// An index of an array.
    Index(usize),
}

/// A path from the root of an object to a value inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(Vec<Seg>);

impl Path {
    /// The object itself.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// This path extended by object keys.
    pub fn keys(&self, keys: &[&str]) -> Path {
        let mut segs = self.0.clone();
        segs.extend(keys.iter().map(|k| Seg::Key((*k).to_owned())));
        Path(segs)
    }

    /// This path extended by one segment.
    pub fn child(&self, seg: Seg) -> Path {
        let mut segs = self.0.clone();
        segs.push(seg);
        Path(segs)
    }

    pub fn segs(&self) -> &[Seg] {
        &self.0
    }

    /// The escaped JSON pointer, as a JSON patch needs it.
    pub fn to_pointer(&self) -> PointerBuf {
        PointerBuf::from_tokens(self.0.iter().map(|s| match s {
            Seg::Key(k) => Token::new(k.as_str()),
            Seg::Index(i) => Token::from(*i),
        }))
    }

    /// The value at this path, if every step exists.
    pub fn lookup<'v>(&self, root: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        self.0.iter().try_fold(root, |v, seg| match seg {
            Seg::Key(k) => v.as_object()?.get(k),
            Seg::Index(i) => v.as_array()?.get(*i),
        })
    }
}

impl fmt::Display for Path {
    /// The JSON pointer, so messages name paths the way `kubectl patch --type=json` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        f.write_str(self.to_pointer().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotation_keys_are_escaped() {
        let p = Path::root().keys(&["metadata", "annotations", "kube2hadoop.io/user"]);
        assert_eq!(
            p.to_pointer().as_str(),
            "/metadata/annotations/kube2hadoop.io~1user"
        );
    }

    #[test]
    fn tilde_is_escaped_before_slash() {
        let p = Path::root().keys(&["a~/b"]);
        assert_eq!(p.to_pointer().as_str(), "/a~0~1b");
    }

    #[test]
    fn indices_and_display() {
        let p = Path::root()
            .keys(&["spec", "items"])
            .child(Seg::Index(2))
            .keys(&["template"]);
        assert_eq!(p.to_string(), "/spec/items/2/template");
        assert_eq!(Path::root().to_string(), "/");
    }

    #[test]
    fn lookup_follows_keys_and_indices() {
        let v = json!({"a": [{"b": 1}], "k/x": 2});
        let p = Path::root().keys(&["a"]).child(Seg::Index(0)).keys(&["b"]);
        assert_eq!(p.lookup(&v), Some(&json!(1)));
        assert_eq!(Path::root().keys(&["k/x"]).lookup(&v), Some(&json!(2)));
        assert_eq!(Path::root().keys(&["a", "b"]).lookup(&v), None);
    }

    #[test]
    fn escaped_pointer_resolves_in_json_patch() {
        let mut doc = json!({"metadata": {"annotations": {"kube2hadoop.io/user": "x"}}});
        let path = Path::root()
            .keys(&["metadata", "annotations", "kube2hadoop.io/user"])
            .to_pointer();
        let op = json_patch::PatchOperation::Remove(json_patch::RemoveOperation { path });
        json_patch::patch(&mut doc, &[op]).expect("escaped pointer applies");
        assert_eq!(doc, json!({"metadata": {"annotations": {}}}));
    }
}
