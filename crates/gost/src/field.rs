//! Prime-field arithmetic behind the curves, in constant time.
//!
//! Two implementations of one [`FieldElement`] contract:
//! - `crypto-bigint`'s `ConstMontyForm` (Montgomery form), for any odd prime: the test curves of
//!   the standards' examples;
//! - [`PmElement`], for the pseudo-Mersenne primes p = 2^(64·L) − c of every curve NCA uses
//!   (CryptoPro-A and TC26 256 A: 2^256 − 617; TC26 512 A: 2^512 − 569). Reduction folds the
//!   high half back multiplied by c, which is several times faster than a Montgomery reduction.
//!   It is checked against `ConstMontyForm` on random and edge values in the tests.
//!
//! Must never: branch on or index memory by a field element's value; every loop runs over all
//! limbs and every conditional is a mask.

// Limb arithmetic indexes several arrays in step; index loops say that most plainly.
#![allow(clippy::needless_range_loop)]

use core::fmt::Debug;
use core::marker::PhantomData;

use crypto_bigint::modular::{ConstMontyForm, ConstMontyParams};
use crypto_bigint::{Choice, CtAssign, CtEq, Uint};

/// An element of GF(p) for one fixed p.
pub(crate) trait FieldElement<const L: usize>: Copy + Debug + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
    /// The element for an integer below p.
    fn from_uint(x: &Uint<L>) -> Self;
    /// The canonical integer in [0, p).
    fn to_uint(&self) -> Uint<L>;
    /// The modulus p.
    fn modulus() -> Uint<L>;
    fn add(&self, rhs: &Self) -> Self;
    fn sub(&self, rhs: &Self) -> Self;
    fn mul(&self, rhs: &Self) -> Self;
    fn square(&self) -> Self;
    fn neg(&self) -> Self;
    fn double(&self) -> Self {
        self.add(self)
    }
    /// The inverse (0 for 0), in constant time.
    fn invert(&self) -> Self;
    fn ct_eq(&self, rhs: &Self) -> Choice;
    fn ct_assign(&mut self, rhs: &Self, choice: Choice);
    fn zeroize(&mut self);
}

impl<P: ConstMontyParams<L>, const L: usize> FieldElement<L> for ConstMontyForm<P, L> {
    const ZERO: Self = ConstMontyForm::ZERO;
    const ONE: Self = ConstMontyForm::ONE;
    fn from_uint(x: &Uint<L>) -> Self {
        ConstMontyForm::new(x)
    }
    fn to_uint(&self) -> Uint<L> {
        self.retrieve()
    }
    fn modulus() -> Uint<L> {
        *P::PARAMS.modulus().as_ref()
    }
    fn add(&self, rhs: &Self) -> Self {
        ConstMontyForm::add(self, rhs)
    }
    fn sub(&self, rhs: &Self) -> Self {
        ConstMontyForm::sub(self, rhs)
    }
    fn mul(&self, rhs: &Self) -> Self {
        ConstMontyForm::mul(self, rhs)
    }
    fn square(&self) -> Self {
        ConstMontyForm::square(self)
    }
    fn neg(&self) -> Self {
        ConstMontyForm::neg(self)
    }
    fn double(&self) -> Self {
        ConstMontyForm::double(self)
    }
    fn invert(&self) -> Self {
        ConstMontyForm::invert(self).unwrap_or(ConstMontyForm::ZERO)
    }
    fn ct_eq(&self, rhs: &Self) -> Choice {
        CtEq::ct_eq(self, rhs)
    }
    fn ct_assign(&mut self, rhs: &Self, choice: Choice) {
        CtAssign::ct_assign(self, rhs, choice)
    }
    fn zeroize(&mut self) {
        zeroize::Zeroize::zeroize(self)
    }
}

/// A pseudo-Mersenne prime p = 2^(64·L) − C (C small: below 2^32).
pub(crate) trait PseudoMersenne<const L: usize>:
    Copy + Debug + Send + Sync + 'static
{
    const C: u64;
}

/// An element of GF(2^(64·L) − C), kept below 2^(64·L) (not always fully reduced; canonical
/// only when converted out or compared).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PmElement<M, const L: usize> {
    limbs: [u64; L],
    modulus: PhantomData<M>,
}

/// Adds a small value (below 2^63) to `limbs`, returning the carry out (0 or 1).
#[inline(always)]
fn add_small<const L: usize>(limbs: &mut [u64; L], value: u64) -> u64 {
    let mut carry = value;
    for limb in limbs.iter_mut() {
        let (sum, overflow) = limb.overflowing_add(carry);
        *limb = sum;
        carry = overflow as u64;
    }
    carry
}

/// Subtracts a small value from `limbs`, returning the borrow out (0 or 1).
#[inline(always)]
fn sub_small<const L: usize>(limbs: &mut [u64; L], value: u64) -> u64 {
    let mut borrow = value;
    for limb in limbs.iter_mut() {
        let (diff, underflow) = limb.overflowing_sub(borrow);
        *limb = diff;
        borrow = underflow as u64;
    }
    borrow
}

impl<M: PseudoMersenne<L>, const L: usize> PmElement<M, L> {
    const fn from_limbs(limbs: [u64; L]) -> Self {
        Self {
            limbs,
            modulus: PhantomData,
        }
    }

    /// The element for a big-endian hex integer below p (for the curve constants).
    pub(crate) const fn from_be_hex(hex: &str) -> Self {
        Self::from_limbs(Uint::<L>::from_be_hex(hex).to_words())
    }

    /// The fully reduced limbs (value mod p).
    #[inline(always)]
    fn canonical(&self) -> [u64; L] {
        // v ≥ p exactly when v + C carries out of 2^(64·L); then v − p = (v + C) mod 2^(64·L).
        let mut reduced = self.limbs;
        let carry = add_small(&mut reduced, M::C);
        let mask = 0u64.wrapping_sub(carry);
        let mut out = self.limbs;
        for (o, r) in out.iter_mut().zip(reduced.iter()) {
            *o = (*o & !mask) | (*r & mask);
        }
        out
    }

    /// Reduces a 2L-limb product (in `wide[..2L]`) modulo p.
    #[inline(always)]
    fn reduce_wide(wide: &[u64; 16]) -> Self {
        let mut out = [0u64; L];
        let mut carry = 0u64;
        for i in 0..L {
            let v = (wide[i + L] as u128) * (M::C as u128) + wide[i] as u128 + carry as u128;
            out[i] = v as u64;
            carry = (v >> 64) as u64;
        }
        // carry ≤ C, so carry·C < 2^64; fold it, then the (rare) second carry.
        let again = add_small(&mut out, carry * M::C);
        let last = add_small(&mut out, again * M::C);
        debug_assert_eq!(last, 0);
        Self::from_limbs(out)
    }

    /// self^exponent for a public exponent (fixed 4-bit windows).
    fn pow_public(&self, exponent: &Uint<L>) -> Self {
        let mut table = [Self::ONE; 16];
        for i in 1..16 {
            table[i] = table[i - 1].mul(self);
        }
        let mut acc = Self::ONE;
        let words = exponent.as_words();
        for index in (0..L * 16).rev() {
            for _ in 0..4 {
                acc = acc.square();
            }
            // The exponent (p − 2) is public: indexing by it leaks nothing.
            let nibble = ((words[index / 16] >> ((index % 16) * 4)) & 0xf) as usize;
            acc = acc.mul(&table[nibble]);
        }
        acc
    }
}

impl<M: PseudoMersenne<L>, const L: usize> FieldElement<L> for PmElement<M, L> {
    const ZERO: Self = Self::from_limbs([0; L]);
    const ONE: Self = {
        let mut limbs = [0u64; L];
        limbs[0] = 1;
        Self::from_limbs(limbs)
    };

    fn from_uint(x: &Uint<L>) -> Self {
        Self::from_limbs(*x.as_words())
    }

    fn to_uint(&self) -> Uint<L> {
        Uint::from_words(self.canonical())
    }

    fn modulus() -> Uint<L> {
        let mut limbs = [u64::MAX; L];
        limbs[0] = limbs[0] - M::C + 1;
        Uint::from_words(limbs)
    }

    #[inline]
    fn add(&self, rhs: &Self) -> Self {
        let mut out = [0u64; L];
        let mut carry = 0u64;
        for i in 0..L {
            let (s1, o1) = self.limbs[i].overflowing_add(rhs.limbs[i]);
            let (s2, o2) = s1.overflowing_add(carry);
            out[i] = s2;
            carry = (o1 | o2) as u64;
        }
        // 2^(64·L) ≡ C: fold the carry, then the carry that folding may cause.
        let again = add_small(&mut out, carry * M::C);
        add_small(&mut out, again * M::C);
        Self::from_limbs(out)
    }

    #[inline]
    fn sub(&self, rhs: &Self) -> Self {
        let mut out = [0u64; L];
        let mut borrow = 0u64;
        for i in 0..L {
            let (d1, u1) = self.limbs[i].overflowing_sub(rhs.limbs[i]);
            let (d2, u2) = d1.overflowing_sub(borrow);
            out[i] = d2;
            borrow = (u1 | u2) as u64;
        }
        // A borrow means out = a − b + 2^(64·L); a − b + p = out − C.
        let again = sub_small(&mut out, borrow * M::C);
        sub_small(&mut out, again * M::C);
        Self::from_limbs(out)
    }

    #[inline]
    fn mul(&self, rhs: &Self) -> Self {
        let mut wide = [0u64; 16];
        for i in 0..L {
            let mut carry = 0u64;
            for j in 0..L {
                let v = (self.limbs[i] as u128) * (rhs.limbs[j] as u128)
                    + wide[i + j] as u128
                    + carry as u128;
                wide[i + j] = v as u64;
                carry = (v >> 64) as u64;
            }
            wide[i + L] = carry;
        }
        Self::reduce_wide(&wide)
    }

    #[inline]
    fn square(&self) -> Self {
        // Off-diagonal products once, doubled, plus the squares on the diagonal.
        let a = &self.limbs;
        let mut wide = [0u64; 16];
        for i in 0..L {
            let mut carry = 0u64;
            for j in (i + 1)..L {
                let v = (a[i] as u128) * (a[j] as u128) + wide[i + j] as u128 + carry as u128;
                wide[i + j] = v as u64;
                carry = (v >> 64) as u64;
            }
            wide[i + L] = carry;
        }
        let mut top = 0u64;
        for limb in wide.iter_mut().take(2 * L) {
            let next = *limb >> 63;
            *limb = (*limb << 1) | top;
            top = next;
        }
        let mut carry = 0u128;
        for i in 0..L {
            let sq = (a[i] as u128) * (a[i] as u128);
            let lo = wide[2 * i] as u128 + (sq as u64) as u128 + carry;
            wide[2 * i] = lo as u64;
            let hi = wide[2 * i + 1] as u128 + (sq >> 64) + (lo >> 64);
            wide[2 * i + 1] = hi as u64;
            carry = hi >> 64;
        }
        Self::reduce_wide(&wide)
    }

    #[inline]
    fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    fn invert(&self) -> Self {
        // Fermat: a^(p−2); the exponent is public and fixed, so the time does not depend on a.
        let p_minus_2 = Self::modulus().wrapping_sub(&Uint::from_u64(2));
        self.pow_public(&p_minus_2)
    }

    fn ct_eq(&self, rhs: &Self) -> Choice {
        let (a, b) = (self.canonical(), rhs.canonical());
        let mut diff = 0u64;
        for i in 0..L {
            diff |= a[i] ^ b[i];
        }
        Choice::from_u64_nz(diff).not()
    }

    #[inline]
    fn ct_assign(&mut self, rhs: &Self, choice: Choice) {
        let mask = choice.to_u64_mask();
        for i in 0..L {
            self.limbs[i] = (self.limbs[i] & !mask) | (rhs.limbs[i] & mask);
        }
    }

    fn zeroize(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.limbs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::{const_monty_params, U256, U512};

    #[derive(Clone, Copy, Debug)]
    struct P256;
    impl PseudoMersenne<4> for P256 {
        const C: u64 = 617;
    }
    #[derive(Clone, Copy, Debug)]
    struct P512;
    impl PseudoMersenne<8> for P512 {
        const C: u64 = 569;
    }
    const_monty_params!(
        M256,
        U256,
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD97"
    );
    const_monty_params!(
        M512,
        U512,
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDC7"
    );

    fn values<const L: usize>(seed: u64, p: &Uint<L>) -> Vec<Uint<L>> {
        let mut out = vec![
            Uint::ZERO,
            Uint::ONE,
            p.wrapping_sub(&Uint::ONE),
            p.wrapping_sub(&Uint::from_u64(2)),
            Uint::from_u64(617),
            Uint::MAX.shr_vartime(1),
        ];
        let mut state = seed;
        for _ in 0..40 {
            let mut words = [0u64; L];
            for w in words.iter_mut() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *w = state ^ (state >> 29);
            }
            // Bias towards extreme limbs, where carries happen.
            if state.is_multiple_of(3) {
                words[L - 1] = u64::MAX;
            }
            let x = Uint::from_words(words);
            if x < *p {
                out.push(x);
            }
        }
        out
    }

    fn agrees<M: PseudoMersenne<L>, Q: ConstMontyParams<L>, const L: usize>(seed: u64) {
        let p = <PmElement<M, L> as FieldElement<L>>::modulus();
        assert_eq!(p, *Q::PARAMS.modulus().as_ref(), "modulus");
        let vals = values::<L>(seed, &p);
        for a in &vals {
            let (pa, ma) = (
                PmElement::<M, L>::from_uint(a),
                ConstMontyForm::<Q, L>::new(a),
            );
            assert_eq!(pa.square().to_uint(), ma.square().retrieve(), "square");
            assert_eq!(pa.neg().to_uint(), ma.neg().retrieve(), "neg");
            assert_eq!(pa.double().to_uint(), ma.double().retrieve(), "double");
            let inverse = FieldElement::invert(&pa);
            assert_eq!(
                inverse.to_uint(),
                FieldElement::invert(&ma).retrieve(),
                "invert"
            );
            for b in &vals {
                let (pb, mb) = (
                    PmElement::<M, L>::from_uint(b),
                    ConstMontyForm::<Q, L>::new(b),
                );
                assert_eq!(pa.add(&pb).to_uint(), ma.add(&mb).retrieve(), "add");
                assert_eq!(pa.sub(&pb).to_uint(), ma.sub(&mb).retrieve(), "sub");
                assert_eq!(pa.mul(&pb).to_uint(), ma.mul(&mb).retrieve(), "mul");
                assert_eq!(FieldElement::ct_eq(&pa, &pb).to_bool(), a == b, "eq");
                // Chains of operations on non-canonical intermediate values.
                let chain = pa.sub(&pb).add(&pa).mul(&pb.neg()).square();
                let expected = ma.sub(&mb).add(&ma).mul(&mb.neg()).square();
                assert_eq!(chain.to_uint(), expected.retrieve(), "chain");
            }
        }
    }

    #[test]
    fn pseudo_mersenne_arithmetic_matches_montgomery_arithmetic() {
        agrees::<P256, M256, 4>(7);
        agrees::<P512, M512, 8>(11);
    }
}
