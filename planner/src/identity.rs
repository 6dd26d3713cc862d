//! [`Identity`]: who is asking, as a front end established it.

use meshgate_policy::Policy;

/// Who is asking. Front ends build it after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// Groups asserted by the credential (a JWT's groups claim), in
    /// addition to those the policy gives the user.
    pub groups: std::collections::BTreeSet<String>,
    /// Attributes asserted by the credential; they override the policy's.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// The signed-in user acting as `user`, when the policy lets them
    /// impersonate (recorded in every audit record).
    pub impersonator: Option<String>,
}

impl Identity {
    /// Who a source that runs queries as the end user is told about: the
    /// user (after impersonation) and what their credential asserted.
    pub fn end_user(&self) -> meshgate_connectors::EndUser {
        meshgate_connectors::EndUser {
            name: self.user.clone(),
            groups: self.groups.iter().cloned().collect(),
            attributes: self.attributes.clone(),
        }
    }

    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            groups: Default::default(),
            attributes: Default::default(),
            impersonator: None,
        }
    }

    /// The policy principal for this identity under `policy`.
    pub fn principal(&self, policy: &Policy) -> meshgate_policy::Principal {
        let mut principal = policy.principal(&self.user);
        principal.groups.extend(self.groups.iter().cloned());
        principal.attributes.extend(self.attributes.clone());
        principal
    }
}
