//! Users' input: email, password, name, and the bodies that carry them.

use serde_json::{Map, Value};

use super::fields::{chars, has_control, Fields, NO_CONTROL_RULE};
use crate::error::ApiError;

const EMAIL_RULE: &str = "must be a valid email address of at most 254 characters";
const PASSWORD_RULE: &str = "must be 8 to 128 characters";
const NAME_RULE: &str = "must be 1 to 100 characters";

/// A trimmed, lower-cased email with one `@`, text on both sides and a dot
/// in the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises and checks an email.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if has_control(raw.trim(), &[]) {
            return Err(NO_CONTROL_RULE);
        }
        let email = raw.trim().to_lowercase();
        let valid = chars(&email) <= 254
            && !email.chars().any(char::is_whitespace)
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Self(email))
        } else {
            Err(EMAIL_RULE)
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8 to 128 characters. Longer inputs are refused before
/// hashing: they are a denial-of-service vector.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Checks a password's length (it is not trimmed) and characters.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if has_control(raw, &[]) {
            return Err(NO_CONTROL_RULE);
        }
        if (8..=128).contains(&chars(raw)) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(PASSWORD_RULE)
        }
    }

    /// The password, for the hasher.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A display name, trimmed, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Trims and checks a name.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        if has_control(name, &[]) {
            return Err(NO_CONTROL_RULE);
        }
        if (1..=100).contains(&chars(name)) {
            Ok(Self(name.to_owned()))
        } else {
            Err(NAME_RULE)
        }
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `POST /api/auth/register`.
#[derive(Debug)]
pub struct Registration {
    /// Normalised email.
    pub email: Email,
    /// The password to hash.
    pub password: Password,
    /// Trimmed name.
    pub name: UserName,
}

impl Registration {
    /// Parses the body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut f = Fields::new(body);
        let email = f.parse_string("email", true, Email::parse);
        let password = f.parse_string("password", true, Password::parse);
        let name = f.parse_string("name", true, UserName::parse);
        f.finish()?;
        match (email, password, name) {
            (Some(email), Some(password), Some(name)) => Ok(Self {
                email,
                password,
                name,
            }),
            _ => unreachable!("BUG: finish() passed with a field missing"),
        }
    }
}

/// `POST /api/auth/login`. Both fields are checked only for what every
/// string field of the contract obeys: type, cap (email 254 characters after
/// trimming, password 128) and no control characters (in the email once
/// trimmed, as registration has it). Anything else (a malformed email, a
/// short password) is simply wrong credentials.
pub struct Credentials {
    /// Normalised email (a malformed one cannot match a user).
    pub email: String,
    /// The password as given.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"***")
            .finish()
    }
}

impl Credentials {
    /// Parses the body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut f = Fields::new(body);
        let email = f.parse_string("email", true, |raw| {
            let email = raw.trim().to_lowercase();
            if has_control(&email, &[]) {
                Err(NO_CONTROL_RULE)
            } else if chars(&email) > 254 {
                Err("must be at most 254 characters")
            } else {
                Ok(email)
            }
        });
        let password = f.parse_string("password", true, |raw| {
            if has_control(raw, &[]) {
                Err(NO_CONTROL_RULE)
            } else if chars(raw) > 128 {
                Err("must be at most 128 characters")
            } else {
                Ok(raw.to_owned())
            }
        });
        f.finish()?;
        match (email, password) {
            (Some(email), Some(password)) => Ok(Self { email, password }),
            _ => unreachable!("BUG: finish() passed with a field missing"),
        }
    }
}

/// `PUT /api/profile`: name and/or email.
#[derive(Debug)]
pub struct ProfileUpdate {
    /// New name, if given.
    pub name: Option<UserName>,
    /// New email, if given.
    pub email: Option<Email>,
}

impl ProfileUpdate {
    /// Parses the body; at least one field is required.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let empty = body.is_empty();
        let mut f = Fields::new(body);
        let name = f.parse_string("name", false, UserName::parse);
        let email = f.parse_string("email", false, Email::parse);
        if empty {
            f.error("body", "must contain at least one of name, email");
        }
        f.finish()?;
        Ok(Self { name, email })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::strategies::{body, invalid_fields};
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a@b@c.com",
            "a b@c.com",
            "ann@.com",
            "ann@com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let local = "a".repeat(254 - "@example.com".len());
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
        assert!(Email::parse(&format!("{local}a@example.com")).is_err());
    }

    #[test]
    fn password_and_name_boundaries_count_code_points() {
        assert!(Password::parse(&"é".repeat(8)).is_ok());
        assert!(Password::parse(&"x".repeat(7)).is_err());
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(UserName::parse("  Ann  ").unwrap().as_str(), "Ann");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"名".repeat(100)).is_ok());
        assert!(UserName::parse(&"名".repeat(101)).is_err());
    }

    #[test]
    fn registration_reports_every_bad_field() {
        let err =
            Registration::parse(obj(json!({"email": "x", "password": 5, "extra": 1}))).unwrap_err();
        let ApiError::Validation(fields) = err else {
            panic!("expected validation")
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["email", "password", "name", "extra"]);
    }

    #[test]
    fn profile_update_needs_a_field() {
        let err = ProfileUpdate::parse(Map::new()).unwrap_err();
        let ApiError::Validation(fields) = err else {
            panic!("expected validation")
        };
        assert_eq!(fields[0].field, "body");
        let update = ProfileUpdate::parse(obj(json!({"name": " Bo "}))).unwrap();
        assert_eq!(update.name.unwrap().as_str(), "Bo");
        assert!(update.email.is_none());
    }

    #[test]
    fn control_characters_are_refused_in_every_field() {
        for c in ['\0', '\u{1}', '\t', '\n', '\r', '\u{7f}', '\u{85}'] {
            assert_eq!(
                Email::parse(&format!("a{c}b@example.com")),
                Err(NO_CONTROL_RULE)
            );
            assert!(Password::parse(&format!("long enough{c}")).is_err());
            assert_eq!(UserName::parse(&format!("An{c}n")), Err(NO_CONTROL_RULE));
            assert_eq!(
                UserName::parse(&format!("{c}Ann")).is_ok(),
                c.is_whitespace()
            );
            let login = Credentials::parse(obj(json!({
                "email": format!("a{c}@example.com"), "password": format!("pw{c}")
            })));
            let ApiError::Validation(fields) = login.unwrap_err() else {
                panic!("expected validation")
            };
            let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["email", "password"]);
        }
    }

    #[test]
    fn login_caps_the_email_and_accepts_what_registration_would_refuse() {
        let domain = "@example.com";
        let at_cap = format!("  {}{domain}  ", "a".repeat(254 - domain.len()));
        let over = format!("{}{domain}", "a".repeat(255 - domain.len()));
        assert!(Credentials::parse(obj(json!({"email": at_cap, "password": "x"}))).is_ok());
        assert!(Credentials::parse(obj(json!({"email": over, "password": "x"}))).is_err());
        // Malformed email, short password: simply wrong credentials (401).
        let creds = Credentials::parse(obj(json!({"email": " NOPE ", "password": "x"}))).unwrap();
        assert_eq!(creds.email, "nope");
        assert!(
            !format!("{creds:?}").contains("\"x\""),
            "Debug hides the password"
        );
    }

    fn clean(s: &str) -> bool {
        !super::has_control(s, &[])
    }

    fn names_only_given(err: &ApiError, b: &Map<String, Value>, required: &[&str]) -> bool {
        let named = invalid_fields(err);
        !named.is_empty()
            && named
                .iter()
                .all(|f| b.contains_key(f) || f == "body" || required.contains(&f.as_str()))
    }

    proptest! {
        #[test]
        fn registration_bodies(b in body(&["email", "password", "name"])) {
            match Registration::parse(b.clone()) {
                Ok(r) => {
                    let email = r.email.as_str();
                    prop_assert!(clean(email) && chars(email) <= 254 && email.contains('@'));
                    prop_assert_eq!(email, email.trim());
                    prop_assert_eq!(email.to_lowercase(), email);
                    let password = r.password.into_inner();
                    prop_assert!(clean(&password) && (8..=128).contains(&chars(&password)));
                    let name = r.name.as_str();
                    prop_assert!(clean(name) && (1..=100).contains(&chars(name)));
                    prop_assert_eq!(name, name.trim());
                }
                Err(err) => prop_assert!(names_only_given(&err, &b, &["email", "password", "name"])),
            }
        }

        #[test]
        fn login_bodies(b in body(&["email", "password"])) {
            match Credentials::parse(b.clone()) {
                Ok(c) => {
                    prop_assert!(clean(&c.email) && chars(&c.email) <= 254);
                    prop_assert!(clean(&c.password) && chars(&c.password) <= 128);
                }
                Err(err) => prop_assert!(names_only_given(&err, &b, &["email", "password"])),
            }
        }

        #[test]
        fn profile_update_bodies(b in body(&["email", "name"])) {
            match ProfileUpdate::parse(b.clone()) {
                Ok(u) => {
                    prop_assert!(u.name.is_some() || u.email.is_some());
                    prop_assert!(u.name.is_none_or(|n| clean(n.as_str())));
                    prop_assert!(u.email.is_none_or(|e| clean(e.as_str())));
                }
                Err(err) => prop_assert!(names_only_given(&err, &b, &[])),
            }
        }
    }
}
