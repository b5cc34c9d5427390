//! Size limits applied when an instance record is validated.
//!
//! [`Limits`] is plain configuration: the server fills it from its config file and passes it to
//! [`Instance::parse`](crate::Instance::parse). Records read back from the store use
//! [`Limits::unbounded`] so a lowered limit never makes stored records unreadable.

/// Upper bounds on the size of an instance record and its blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest `user_data` or `vendor_data`, in bytes after base64 decoding.
    pub max_user_data: usize,
    /// Largest whole record, in bytes of its canonical compact JSON form.
    pub max_record: usize,
    /// Largest Firecracker MMDS document of one instance, in bytes of compact JSON (a document
    /// of exactly this size is accepted, as in Firecracker).
    pub max_mmds: usize,
}

impl Limits {
    /// No limits at all: for decoding records that were validated when they were stored.
    pub const fn unbounded() -> Self {
        Self { max_user_data: usize::MAX, max_record: usize::MAX, max_mmds: usize::MAX }
    }
}

impl Default for Limits {
    /// 64 KiB of user data (EC2's limit, before base64), 1 MiB per record and 51200 bytes per
    /// MMDS document (Firecracker's default `--mmds-size-limit`).
    fn default() -> Self {
        Self { max_user_data: 65_536, max_record: 1_048_576, max_mmds: 51_200 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let limits = Limits::default();
        assert_eq!(limits.max_user_data, 65_536);
        assert_eq!(limits.max_record, 1_048_576);
        assert_eq!(limits.max_mmds, 51_200);
        assert_eq!(Limits::unbounded().max_record, usize::MAX);
    }
}
