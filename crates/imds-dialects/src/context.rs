//! What a dialect renders from besides the request: the [`Subject`] (one instance's record, MMDS
//! document, guest state, events and rendering cache) and the [`Context`] (the deployment's token key,
//! the clock's reading, settings, role credentials and signing key). Borrowed values only: a
//! dialect never fetches any of them.

use imds_model::{GuestState, Instance, InstanceEvents, Mmds};

use crate::{credentials, token, Cache, Settings};

/// What a dialect needs from the world besides the instance and the request.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The deployment's session-token key.
    pub tokens: &'a token::TokenKey,
    /// The current time, Unix seconds.
    pub now: u64,
    /// Deployment-wide dialect settings.
    pub settings: &'a Settings,
    /// The roles' current credentials.
    pub credentials: &'a dyn credentials::RoleCredentials,
    /// The identity signing key, once loaded.
    pub signer: Option<&'a dyn credentials::Signer>,
    /// A random number drawn for this request, for the nonce of a session token it mints
    /// (the server draws one for every `PUT`, the only method that mints).
    pub nonce: u64,
}

impl<'a> Context<'a> {
    /// A context with the default [`Settings`], no roles and no signer.
    pub fn new(tokens: &'a token::TokenKey, now: u64) -> Self {
        Self {
            tokens,
            now,
            settings: &Settings::DEFAULT,
            credentials: &credentials::NoCredentials,
            signer: None,
            nonce: 0,
        }
    }
}

/// Everything a dialect renders from for one instance.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The operator's record.
    pub instance: &'a Instance,
    /// The instance's MMDS configuration and document, once the operator set either.
    pub mmds: Option<&'a Mmds>,
    /// What the instance's guests wrote.
    pub state: &'a GuestState,
    /// The instance's runtime events, if it has any (rendered with [`Context::now`]).
    pub events: Option<&'a InstanceEvents>,
    /// What dialects keep of this version of the record between requests, held by whoever
    /// keeps the record (`None`: everything is rendered for each request).
    pub cache: Option<&'a Cache>,
}

impl<'a> From<&'a Instance> for Subject<'a> {
    fn from(instance: &'a Instance) -> Self {
        Subject::new(instance)
    }
}

impl<'a> From<&Subject<'a>> for Subject<'a> {
    fn from(subject: &Subject<'a>) -> Self {
        *subject
    }
}

impl<'a> Subject<'a> {
    /// An instance with no MMDS and no guest state.
    pub fn new(instance: &'a Instance) -> Self {
        static EMPTY: std::sync::OnceLock<GuestState> = std::sync::OnceLock::new();
        Self { instance, mmds: None, state: EMPTY.get_or_init(GuestState::default), events: None, cache: None }
    }
}
