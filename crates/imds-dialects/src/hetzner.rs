//! The Hetzner dialect (`/hetzner/v1/…`): not served yet; every path answers EC2's not-found page.

use crate::{Context, GuestRequest, GuestResponse, Subject};

/// Answers one Hetzner request for the subject instance.
pub fn respond(_subject: &Subject<'_>, _request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    crate::ec2::not_found()
}
