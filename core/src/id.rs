//! Stable ids: the same inputs give the same id on every machine and every
//! version, so a replayed event yields the same alert id and duplicates can be
//! dropped downstream.

/// A 128-bit FNV-1a hash of the parts (each followed by a separator byte), as
/// 32 lower-case hex digits. Not cryptographic: ids, not signatures.
pub fn stable_id<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0x1f)) {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

#[cfg(test)]
mod tests {
    use super::stable_id;

    #[test]
    fn same_parts_same_id_and_separators_matter() {
        assert_eq!(stable_id(["a", "b"]), stable_id(["a", "b"]));
        assert_ne!(stable_id(["ab", ""]), stable_id(["a", "b"]));
        assert_eq!(stable_id(["x"]).len(), 32);
    }
}
