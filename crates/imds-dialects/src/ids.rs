//! Identifiers dialects derive from the record (rule R1 of docs/dialects.md), and the hash they
//! are derived with (`fnv1a`), so that one instance tells one story: OpenStack's `uuid`,
//! Azure's `vmId` and the SMBIOS UUID are the same UUID unless an override block says otherwise.

use imds_model::Instance;
use uuid::Uuid;

/// The name space prefix of derived UUIDs: UUIDv5 (URL name space) of `imds:instance/<id>`.
const UUID_NAME_PREFIX: &str = "imds:instance/";

/// The instance's UUID: the record id when it is a UUID, else the UUIDv5 of
/// `imds:instance/<id>` in the URL name space (deterministic: every replica and every restart
/// agrees).
pub fn instance_uuid(instance: &Instance) -> Uuid {
    let id = instance.id.as_str();
    Uuid::try_parse(id)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("{UUID_NAME_PREFIX}{id}").as_bytes()))
}

/// The hash every derived id is built from (stable across releases: ids must not change).
/// 64-bit FNV-1a over `parts`, each followed by a 0 byte so `["ab", "c"]` ≠ `["a", "bc"]`.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    parts
        .iter()
        .flat_map(|part| part.bytes().chain([0]))
        .fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imds_model::InstanceId;

    #[test]
    fn a_uuid_id_passes_through_and_others_derive_a_stable_uuid() {
        let uuid = Instance::new(InstanceId::try_from("6f1a2b3c-0d4e-4f50-8a6b-7c8d9e0f1a2b").unwrap());
        assert_eq!(instance_uuid(&uuid).to_string(), "6f1a2b3c-0d4e-4f50-8a6b-7c8d9e0f1a2b");
        let plain = Instance::new(InstanceId::try_from("i-0123").unwrap());
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "imds:instance/i-0123")
        assert_eq!(instance_uuid(&plain), Uuid::new_v5(&Uuid::NAMESPACE_URL, b"imds:instance/i-0123"));
        assert_eq!(instance_uuid(&plain).get_version_num(), 5);
    }
}
