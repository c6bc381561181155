//! The GOST R 34.10 signature equations (2001/2012/2015 share them), generic over the curve and
//! on integers: no byte orders here (see `encoding`).
//!
//! Signing: e = α mod q (1 if that is 0); C = k·G; r = x_C mod q; s = (r·d + k·e) mod q.
//! Verifying: 0 < r, s < q; v = e⁻¹; z1 = s·v, z2 = −r·v; R = x(z1·G + z2·Q) mod q; R = r.
//!
//! Must never: branch on the private key or the nonce; let k be predictable (it comes from OS
//! randomness, hedged with the key and the digest so that a weak generator alone does not leak
//! the key); keep k or d in memory after use.

use crypto_bigint::modular::ConstMontyForm;
use crypto_bigint::{NonZero, Uint};
use streebog::Digest as _;
use zeroize::{Zeroize, Zeroizing};

use crate::curve::{self, Affine, CurveParams};
use crate::encoding::{uint_from_le, uint_to_le};
use crate::field::FieldElement;
use crate::GostError;

type Scalar<C, const L: usize> = ConstMontyForm<<C as CurveParams<L>>::Q, L>;

/// e = α mod q, replaced by 1 when it is 0 (GOST R 34.10 step 2).
fn digest_scalar<C: CurveParams<L>, const L: usize>(alpha: &Uint<L>) -> Uint<L> {
    let e = alpha.rem(&curve::order_nz::<C, L>());
    if e.is_zero().to_bool() {
        Uint::ONE
    } else {
        e
    }
}

/// (r, s) for private key d, digest integer α and nonce k (1 ≤ k < q). None when r or s is 0
/// (then the caller draws another k).
pub(crate) fn sign_with_k<C: CurveParams<L>, const L: usize>(
    d: &Uint<L>,
    alpha: &Uint<L>,
    k: &Uint<L>,
) -> Option<(Uint<L>, Uint<L>)> {
    let q = curve::order_nz::<C, L>();
    let e = digest_scalar::<C, L>(alpha);
    let mut point = curve::mul_base::<C, L>(k);
    let x = point.affine_x();
    point.zeroize();
    let x = x?;
    let r = x.rem(&q);
    if r.is_zero().to_bool() {
        return None;
    }
    let mut d_m = Scalar::<C, L>::new(d);
    let mut k_m = Scalar::<C, L>::new(k);
    let s_m = Scalar::<C, L>::new(&r)
        .mul(&d_m)
        .add(&k_m.mul(&Scalar::<C, L>::new(&e)));
    zeroize::Zeroize::zeroize(&mut d_m);
    zeroize::Zeroize::zeroize(&mut k_m);
    let s = s_m.to_uint();
    if s.is_zero().to_bool() {
        return None;
    }
    Some((r, s))
}

/// Whether (r, s) is a signature of digest integer α under public key Q (variable time: all
/// inputs are public).
pub(crate) fn verify<C: CurveParams<L>, const L: usize>(
    public: &Affine<C::F, L>,
    alpha: &Uint<L>,
    r: &Uint<L>,
    s: &Uint<L>,
) -> bool {
    let q = curve::order::<C, L>();
    if r.is_zero().to_bool() || s.is_zero().to_bool() || *r >= q || *s >= q {
        return false;
    }
    let e = Scalar::<C, L>::new(&digest_scalar::<C, L>(alpha));
    let Some(v) = Option::<Scalar<C, L>>::from(e.invert_vartime()) else {
        return false;
    };
    let z1 = Scalar::<C, L>::new(s).mul(&v).to_uint();
    let z2 = Scalar::<C, L>::new(r).mul(&v).neg().to_uint();
    let sum = curve::mul_base::<C, L>(&z1).add::<C>(&curve::mul_vartime::<C, L>(public, &z2));
    match sum.affine_x() {
        Some(x) => x.rem(&NonZero::new(q).expect("q is odd")) == *r,
        None => false,
    }
}

/// Q = d·G.
pub(crate) fn public_key<C: CurveParams<L>, const L: usize>(d: &Uint<L>) -> Affine<C::F, L> {
    curve::mul_base::<C, L>(d)
        .to_affine()
        .expect("d is in [1, q) so d·G is not the identity")
}

/// Whether 1 ≤ d < q.
pub(crate) fn is_valid_private<C: CurveParams<L>, const L: usize>(d: &Uint<L>) -> bool {
    let below_q = *d < curve::order::<C, L>();
    let non_zero = !d.is_zero().to_bool();
    below_q & non_zero
}

/// Whether a curve point is a valid public key: in the order-q subgroup (checked only on curves
/// with a cofactor; the others have no other points).
pub(crate) fn is_valid_public<C: CurveParams<L>, const L: usize>(point: &Affine<C::F, L>) -> bool {
    if !point.is_on_curve::<C>() {
        return false;
    }
    if C::HAS_COFACTOR {
        let q = curve::order::<C, L>();
        return curve::mul::<C, L>(&point.to_projective(), &q)
            .is_identity()
            .to_bool();
    }
    true
}

/// The nonce k in [1, q): 2·|q| bits from Streebog-512 over fresh OS randomness, the private key
/// and the digest, reduced mod q (bias below 2⁻²⁵⁶). OS randomness alone would do; mixing in the
/// key and digest means a broken generator does not hand out the key (hedged signatures).
pub(crate) fn nonce<C: CurveParams<L>, const L: usize>(
    d: &Uint<L>,
    digest: &[u8],
) -> Result<Uint<L>, GostError> {
    let mut fresh = Zeroizing::new([0u8; 64]);
    getrandom::fill(fresh.as_mut_slice()).map_err(|e| GostError::Randomness(e.to_string()))?;
    let d_bytes = Zeroizing::new(uint_to_le(d, C::BYTES));
    let q = curve::order_nz::<C, L>();
    for attempt in 0u32.. {
        let mut wide = Zeroizing::new(Vec::with_capacity(2 * C::BYTES));
        let mut block = 0u32;
        while wide.len() < 2 * C::BYTES {
            let mut h = streebog::Streebog512::new();
            h.update(b"qaqpa-gost nonce v1");
            h.update(attempt.to_le_bytes());
            h.update(block.to_le_bytes());
            h.update(fresh.as_slice());
            h.update(d_bytes.as_slice());
            h.update(digest);
            wide.extend_from_slice(&h.finalize());
            block += 1;
        }
        let mut lo = uint_from_le::<L>(&wide[..C::BYTES]);
        let mut hi = uint_from_le::<L>(&wide[C::BYTES..2 * C::BYTES]);
        let k = Uint::rem_wide((lo, hi), &q);
        lo.zeroize();
        hi.zeroize();
        if !k.is_zero().to_bool() {
            return Ok(k);
        }
    }
    Err(GostError::Randomness("no usable nonce".into()))
}

/// A signature (r, s) made with a fresh nonce.
pub(crate) fn sign<C: CurveParams<L>, const L: usize>(
    d: &Uint<L>,
    digest: &[u8],
) -> Result<(Uint<L>, Uint<L>), GostError> {
    let alpha = uint_from_le::<L>(digest);
    loop {
        let mut k = nonce::<C, L>(d, digest)?;
        let signature = sign_with_k::<C, L>(d, &alpha, &k);
        k.zeroize();
        if let Some(rs) = signature {
            return Ok(rs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{TestCurve256, TestCurve512};

    fn be<const L: usize>(hex: &str) -> Uint<L> {
        let padded = format!("{hex:0>width$}", width = L * 16);
        Uint::from_be_hex(&padded)
    }

    /// GOST R 34.10-2012 appendix A.1 (the same numbers as RFC 5832 / RFC 7091 §A.1).
    #[test]
    fn gost_2012_256_bit_example_signs_and_verifies() {
        type C = TestCurve256;
        let d = be::<4>("7A929ADE789BB9BE10ED359DD39A72C11B60961F49397EEE1D19CE9891EC3B28");
        let e = be::<4>("2DFBC1B372D89A1188C09C52E0EEC61FCE52032AB1022E8E67ECE6672B043EE5");
        let k = be::<4>("77105C9B20BCD3122823C8CF6FCC7B956DE33814E95B7FE64FED924594DCEAB3");
        let q = public_key::<C, 4>(&d);
        assert_eq!(
            q.x.to_uint(),
            be::<4>("7F2B49E270DB6D90D8595BEC458B50C58585BA1D4E9B788F6689DBD8E56FD80B")
        );
        assert_eq!(
            q.y.to_uint(),
            be::<4>("26F1B489D6701DD185C8413A977B3CBBAF64D1C593D26627DFFB101A87FF77DA")
        );
        let (r, s) = sign_with_k::<C, 4>(&d, &e, &k).expect("r, s non-zero");
        assert_eq!(
            r,
            be::<4>("41AA28D2F1AB148280CD9ED56FEDA41974053554A42767B83AD043FD39DC0493")
        );
        assert_eq!(
            s,
            be::<4>("01456C64BA4642A1653C235A98A60249BCD6D3F746B631DF928014F6C5BF9C40")
        );
        assert!(verify::<C, 4>(&q, &e, &r, &s));
        assert!(!verify::<C, 4>(&q, &e.wrapping_add(&Uint::ONE), &r, &s));
        assert!(!verify::<C, 4>(&q, &e, &s, &r));
    }

    /// GOST R 34.10-2012 appendix A.2 (RFC 7091 §A.2).
    #[test]
    fn gost_2012_512_bit_example_signs_and_verifies() {
        type C = TestCurve512;
        let d = be::<8>("0BA6048AADAE241BA40936D47756D7C93091A0E8514669700EE7508E508B102072E8123B2200A0563322DAD2827E2714A2636B7BFD18AADFC62967821FA18DD4");
        let e = be::<8>("3754F3CFACC9E0615C4F4A7C4D8DAB531B09B6F9C170C533A71D147035B0C5917184EE536593F4414339976C647C5D5A407ADEDB1D560C4FC6777D2972075B8C");
        let k = be::<8>("0359E7F4B1410FEACC570456C6801496946312120B39D019D455986E364F365886748ED7A44B3E794434006011842286212273A6D14CF70EA3AF71BB1AE679F1");
        let q = public_key::<C, 8>(&d);
        assert_eq!(q.x.to_uint(), be::<8>("115DC5BC96760C7B48598D8AB9E740D4C4A85A65BE33C1815B5C320C854621DD5A515856D13314AF69BC5B924C8B4DDFF75C45415C1D9DD9DD33612CD530EFE1"));
        assert_eq!(q.y.to_uint(), be::<8>("37C7C90CD40B0F5621DC3AC1B751CFA0E2634FA0503B3D52639F5D7FB72AFD61EA199441D943FFE7F0C70A2759A3CDB84C114E1F9339FDF27F35ECA93677BEEC"));
        let (r, s) = sign_with_k::<C, 8>(&d, &e, &k).expect("r, s non-zero");
        assert_eq!(r, be::<8>("2F86FA60A081091A23DD795E1E3C689EE512A3C82EE0DCC2643C78EEA8FCACD35492558486B20F1C9EC197C90699850260C93BCBCD9C5C3317E19344E173AE36"));
        assert_eq!(s, be::<8>("1081B394696FFE8E6585E7A9362D26B6325F56778AADBC081C0BFBE933D52FF5823CE288E8C4F362526080DF7F70CE406A6EEB1F56919CB92A9853BDE73E5B4A"));
        assert!(verify::<C, 8>(&q, &e, &r, &s));
        assert!(!verify::<C, 8>(&q, &e, &r, &s.wrapping_add(&Uint::ONE)));
    }
}
