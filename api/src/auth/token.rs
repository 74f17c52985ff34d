//! HS256 JSON Web Tokens (RFC 7519), just the subset eshop issues and accepts: header
//! `{"alg":"HS256","typ":"JWT"}`, claims `sub`, `sid` (the session), `roles`, `iat`, `exp`. Anything else is refused.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use eshop_domain::values::Role;

type HmacSha256 = Hmac<Sha256>;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// The login session: revoking it ends the token before it expires.
    pub sid: Uuid,
    pub roles: Vec<Role>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

#[derive(Clone)]
pub struct TokenKeys {
    secret: Vec<u8>,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid, roles: Vec<Role>, now: i64) -> String {
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            roles,
            iat: now,
            exp: now.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        let claims = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, claims) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        if claims.contains('.') {
            return Err(TokenError::Malformed);
        }
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        // Only HS256: "none" or an asymmetric algorithm named here is an attack, not a choice.
        if header.get("alg").and_then(|alg| alg.as_str()) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims = URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&claims).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn keys() -> TokenKeys {
        TokenKeys::new("test-secret", Duration::from_secs(60))
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let user = Uuid::now_v7();
        let token = keys().issue(user, Uuid::now_v7(), vec![Role::Admin], NOW);
        let claims = keys().verify(&token, NOW + 10).expect("valid");
        assert_eq!(claims.sub, user);
        assert_eq!(claims.roles, vec![Role::Admin]);
        assert_eq!(claims.exp, NOW + 60);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = keys().issue(Uuid::now_v7(), Uuid::now_v7(), vec![], NOW);
        assert_eq!(keys().verify(&token, NOW + 60), Err(TokenError::Expired));
    }

    #[test]
    fn another_key_or_a_changed_claim_is_refused() {
        let token = keys().issue(Uuid::now_v7(), Uuid::now_v7(), vec![], NOW);
        let other = TokenKeys::new("other-secret", Duration::from_secs(60));
        assert_eq!(other.verify(&token, NOW), Err(TokenError::BadSignature));

        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"{}","roles":["admin"],"iat":{NOW},"exp":{}}}"#,
            Uuid::now_v7(),
            NOW + 60
        ));
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(keys().verify(&forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let token = keys().issue(Uuid::now_v7(), Uuid::now_v7(), vec![], NOW);
        let parts: Vec<&str> = token.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            keys().verify(&format!("{none_header}.{}.", parts[1]), NOW),
            Err(TokenError::Malformed)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!!.###.$$$"] {
            assert!(keys().verify(garbage, NOW).is_err(), "{garbage:?}");
        }
    }
}
