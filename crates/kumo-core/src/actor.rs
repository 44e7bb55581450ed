//! Who is making a request: nobody (signed out), a signed-in user, or an API
//! key acting for the user who owns it.
//!
//! In a policy, `actor` is the user's record as stored (an API key counts as
//! its owner), or `null` when signed out; [`Actor::value`] is exactly that
//! value. See `docs/policies.md`.

use std::fmt;

use serde_json::{Map, Value};
use uuid::Uuid;

/// The built-in `user.role` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    User,
    Coordinator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Coordinator => "coordinator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => Role::User,
            "coordinator" => Role::Coordinator,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Anonymous,
    User,
    ApiKey { key_id: Uuid },
}

/// The caller of a request. The user record is private so that an
/// anonymous actor can't be built with a record, or a user without one.
#[derive(Clone, PartialEq)]
pub struct Actor {
    pub kind: ActorKind,
    user: Option<Map<String, Value>>,
}

impl Actor {
    pub fn anonymous() -> Self {
        Actor {
            kind: ActorKind::Anonymous,
            user: None,
        }
    }

    /// A signed-in user; `record` is their `user` row keyed by column name.
    pub fn user(record: Map<String, Value>) -> Self {
        Actor {
            kind: ActorKind::User,
            user: Some(record),
        }
    }

    /// An API key, which acts as the user who owns it.
    pub fn api_key(key_id: Uuid, owner_record: Map<String, Value>) -> Self {
        Actor {
            kind: ActorKind::ApiKey { key_id },
            user: Some(owner_record),
        }
    }

    /// What `actor` means in a policy: `null` when signed out, otherwise the
    /// user's record as an object.
    pub fn value(&self) -> Value {
        self.user.clone().map_or(Value::Null, Value::Object)
    }

    /// The user's record, if anyone is signed in.
    pub fn record(&self) -> Option<&Map<String, Value>> {
        self.user.as_ref()
    }

    /// The user's id, from the record's `id`.
    pub fn id(&self) -> Option<Uuid> {
        let id = self.user.as_ref()?.get("id")?.as_str()?;
        Uuid::try_parse(id).ok()
    }

    /// `None` when signed out. A record without a known role counts as a
    /// plain user: privileges are never granted by a missing value.
    pub fn role(&self) -> Option<Role> {
        let record = self.user.as_ref()?;
        let role = record.get("role").and_then(Value::as_str);
        Some(role.and_then(Role::parse).unwrap_or(Role::User))
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Some(Role::Admin)
    }
}

/// Shows who the actor is but not the record, which holds sensitive fields
/// such as `password_hash` that must never reach a log.
impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("kind", &self.kind)
            .field("id", &self.id())
            .field("role", &self.role())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    const ID: &str = "0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b";

    #[test]
    fn roles_round_trip() {
        for role in [Role::User, Role::Coordinator, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse(""), None);
    }

    #[test]
    fn anonymous_is_null_with_no_id_or_role() {
        let a = Actor::anonymous();
        assert_eq!(a.kind, ActorKind::Anonymous);
        assert_eq!(a.value(), Value::Null);
        assert_eq!(a.record(), None);
        assert_eq!(a.id(), None);
        assert_eq!(a.role(), None);
        assert!(!a.is_admin());
    }

    #[test]
    fn a_user_is_their_record() {
        let r = json!({"id": ID, "role": "admin", "email": "a@b.c"});
        let a = Actor::user(record(r.clone()));
        assert_eq!(a.kind, ActorKind::User);
        assert_eq!(a.value(), r);
        assert_eq!(a.id(), Uuid::try_parse(ID).ok());
        assert_eq!(a.role(), Some(Role::Admin));
        assert!(a.is_admin());
    }

    #[test]
    fn an_api_key_acts_as_its_owner() {
        let key_id = Uuid::from_u128(7);
        let r = json!({"id": ID, "role": "coordinator"});
        let a = Actor::api_key(key_id, record(r.clone()));
        assert_eq!(a.kind, ActorKind::ApiKey { key_id });
        assert_eq!(a.value(), r);
        assert_eq!(a.id(), Uuid::try_parse(ID).ok());
        assert_eq!(a.role(), Some(Role::Coordinator));
        assert!(!a.is_admin());
    }

    #[test]
    fn a_missing_or_unknown_role_is_a_plain_user() {
        for r in [
            json!({"id": ID}),
            json!({"id": ID, "role": null}),
            json!({"id": ID, "role": "superuser"}),
            json!({"id": ID, "role": 3}),
        ] {
            let a = Actor::user(record(r.clone()));
            assert_eq!(a.role(), Some(Role::User), "{r}");
            assert!(!a.is_admin());
        }
    }

    #[test]
    fn a_malformed_id_is_no_id() {
        assert_eq!(Actor::user(record(json!({"id": "nope"}))).id(), None);
        assert_eq!(Actor::user(record(json!({"id": 1}))).id(), None);
        assert_eq!(Actor::user(Map::new()).id(), None);
    }

    #[test]
    fn debug_never_prints_the_record() {
        let a = Actor::user(record(
            json!({"id": ID, "role": "user", "password_hash": "secret-hash"}),
        ));
        let shown = format!("{a:?}");
        assert!(!shown.contains("secret-hash"), "{shown}");
        assert!(shown.contains(ID), "{shown}");
    }
}
