//! Short-Weierstrass curve arithmetic for the GOST parameter sets, on `crypto-bigint`'s
//! constant-time Montgomery field elements.
//!
//! Points are kept in homogeneous projective coordinates and added with the complete formulas of
//! Renes, Costello and Batina (EUROCRYPT 2016, algorithms 1–3, any `a`): no branch on whether an
//! input is the identity or whether the two inputs are equal, so adding secret-dependent points
//! takes the same steps every time. The formulas are complete for points of odd order, which all
//! points here are (the groups are of prime order q; the one curve with cofactor 4 only ever sees
//! points of the order-q subgroup, which public keys are checked to be in).
//!
//! Scalar multiplication scans the scalar in fixed windows and picks table entries by a
//! constant-time scan of the whole table: no branch and no memory access depends on a secret
//! scalar. The base point has a lazily built fixed-base table of signed 5-bit windows (one
//! mixed addition per window, no doublings); other points use a 16-entry table and 4 doublings
//! per 4-bit window.
//!
//! Verification alone multiplies a public key by a public scalar with variable-time Jacobian
//! arithmetic (`mul_vartime`); nothing secret ever goes through it.
//!
//! Must never: branch on or index memory by a secret scalar or a secret point; leave a secret in a
//! value that is not zeroized by its owner.

use crypto_bigint::modular::ConstMontyParams;
use crypto_bigint::{Choice, CtAssign, NonZero, Uint};

use crate::field::FieldElement;

/// The constants of one GOST curve: y² = x³ + a·x + b over GF(p), base point G of prime order q.
pub(crate) trait CurveParams<const L: usize>: Sized + 'static {
    /// Elements of the field GF(p).
    type F: FieldElement<L>;
    /// The group order q (also odd, so Montgomery arithmetic mod q works).
    type Q: ConstMontyParams<L>;
    /// Bytes in one coordinate or scalar (32 or 64).
    const BYTES: usize;
    /// Whether the curve order has a cofactor other than 1 (public keys then need a subgroup check).
    const HAS_COFACTOR: bool;
    /// Whether a = −3 (then multiplying by a is two additions and a negation).
    const A_IS_MINUS_3: bool;
    /// Curve coefficient a.
    const A: Self::F;
    /// Curve coefficient b.
    const B: Self::F;
    /// The base point G.
    const G: Affine<Self::F, L>;
    /// The fixed-base table of G (built on first use, shared by all threads).
    fn base_table() -> &'static BaseTable<Self::F, L>;
}

/// The order q as an integer.
pub(crate) fn order<C: CurveParams<L>, const L: usize>() -> Uint<L> {
    *<C::Q as ConstMontyParams<L>>::PARAMS.modulus().as_ref()
}

/// The order q as a divisor.
pub(crate) fn order_nz<C: CurveParams<L>, const L: usize>() -> NonZero<Uint<L>> {
    // q is odd, hence non-zero.
    NonZero::new(order::<C, L>()).expect("the group order is odd and so non-zero")
}

/// a·x, as two additions and a negation when a = −3 (a public property of the curve).
#[inline(always)]
fn mul_a<C: CurveParams<L, F = F>, F: FieldElement<L>, const L: usize>(x: &F) -> F {
    if C::A_IS_MINUS_3 {
        x.double().add(x).neg()
    } else {
        C::A.mul(x)
    }
}

/// A point in affine coordinates (never the identity).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Affine<F: FieldElement<L>, const L: usize> {
    pub(crate) x: F,
    pub(crate) y: F,
}

/// A point in homogeneous projective coordinates (X:Y:Z), x = X/Z, y = Y/Z; identity (0:1:0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Projective<F: FieldElement<L>, const L: usize> {
    x: F,
    y: F,
    z: F,
}

impl<F: FieldElement<L>, const L: usize> Affine<F, L> {
    /// The point from integer coordinates, if they satisfy y² = x³ + ax + b.
    pub(crate) fn from_coordinates<C: CurveParams<L, F = F>>(
        x: &Uint<L>,
        y: &Uint<L>,
    ) -> Option<Self> {
        let p = F::modulus();
        if *x >= p || *y >= p {
            return None;
        }
        let point = Self {
            x: F::from_uint(x),
            y: F::from_uint(y),
        };
        point.is_on_curve::<C>().then_some(point)
    }

    /// Whether y² = x³ + a·x + b.
    pub(crate) fn is_on_curve<C: CurveParams<L, F = F>>(&self) -> bool {
        let lhs = self.y.square();
        let rhs = self
            .x
            .square()
            .mul(&self.x)
            .add(&C::A.mul(&self.x))
            .add(&C::B);
        lhs.ct_eq(&rhs).to_bool()
    }

    pub(crate) fn to_projective(self) -> Projective<F, L> {
        Projective {
            x: self.x,
            y: self.y,
            z: F::ONE,
        }
    }
}

impl<F: FieldElement<L>, const L: usize> PartialEq for Affine<F, L> {
    fn eq(&self, other: &Self) -> bool {
        self.x.ct_eq(&other.x).and(self.y.ct_eq(&other.y)).to_bool()
    }
}

impl<F: FieldElement<L>, const L: usize> CtAssign for Projective<F, L> {
    fn ct_assign(&mut self, other: &Self, choice: Choice) {
        self.x.ct_assign(&other.x, choice);
        self.y.ct_assign(&other.y, choice);
        self.z.ct_assign(&other.z, choice);
    }
}

impl<F: FieldElement<L>, const L: usize> CtAssign for Affine<F, L> {
    fn ct_assign(&mut self, other: &Self, choice: Choice) {
        self.x.ct_assign(&other.x, choice);
        self.y.ct_assign(&other.y, choice);
    }
}

impl<F: FieldElement<L>, const L: usize> zeroize::Zeroize for Projective<F, L> {
    fn zeroize(&mut self) {
        self.x.zeroize();
        self.y.zeroize();
        self.z.zeroize();
    }
}

impl<F: FieldElement<L>, const L: usize> Projective<F, L> {
    pub(crate) const IDENTITY: Self = Self {
        x: F::ZERO,
        y: F::ONE,
        z: F::ZERO,
    };

    /// Whether this is the identity (Z = 0), in constant time.
    pub(crate) fn is_identity(&self) -> Choice {
        self.z.ct_eq(&F::ZERO)
    }

    /// Affine coordinates (constant time; the identity maps to None).
    pub(crate) fn to_affine(self) -> Option<Affine<F, L>> {
        // Z is zero only for the identity (whether a point is the identity is public here).
        if self.is_identity().to_bool() {
            return None;
        }
        let z_inv = self.z.invert();
        Some(Affine {
            x: self.x.mul(&z_inv),
            y: self.y.mul(&z_inv),
        })
    }

    /// Affine x coordinate as an integer (constant time), or None for the identity.
    pub(crate) fn affine_x(&self) -> Option<Uint<L>> {
        if self.is_identity().to_bool() {
            return None;
        }
        Some(self.x.mul(&self.z.invert()).to_uint())
    }

    /// −P.
    #[cfg(test)]
    pub(crate) fn neg(&self) -> Self {
        Self {
            x: self.x,
            y: self.y.neg(),
            z: self.z,
        }
    }

    /// P + Q, complete (RCB algorithm 1).
    pub(crate) fn add<C: CurveParams<L, F = F>>(&self, other: &Self) -> Self {
        let b3 = &C::B.add(&C::B).add(&C::B);
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let (x2, y2, z2) = (&other.x, &other.y, &other.z);
        let mut t0 = x1.mul(x2);
        let mut t1 = y1.mul(y2);
        let mut t2 = z1.mul(z2);
        let mut t3 = x1.add(y1);
        let mut t4 = x2.add(y2);
        t3 = t3.mul(&t4);
        t4 = t0.add(&t1);
        t3 = t3.sub(&t4);
        t4 = x1.add(z1);
        let mut t5 = x2.add(z2);
        t4 = t4.mul(&t5);
        t5 = t0.add(&t2);
        t4 = t4.sub(&t5);
        t5 = y1.add(z1);
        let mut x3 = y2.add(z2);
        t5 = t5.mul(&x3);
        x3 = t1.add(&t2);
        t5 = t5.sub(&x3);
        let mut z3 = mul_a::<C, F, L>(&t4);
        x3 = b3.mul(&t2);
        z3 = x3.add(&z3);
        x3 = t1.sub(&z3);
        z3 = t1.add(&z3);
        let mut y3 = x3.mul(&z3);
        t1 = t0.add(&t0);
        t1 = t1.add(&t0);
        t2 = mul_a::<C, F, L>(&t2);
        t4 = b3.mul(&t4);
        t1 = t1.add(&t2);
        t2 = t0.sub(&t2);
        t2 = mul_a::<C, F, L>(&t2);
        t4 = t4.add(&t2);
        t0 = t1.mul(&t4);
        y3 = y3.add(&t0);
        t0 = t5.mul(&t4);
        x3 = x3.mul(&t3);
        x3 = x3.sub(&t0);
        t0 = t3.mul(&t1);
        z3 = z3.mul(&t5);
        z3 = z3.add(&t0);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + Q for an affine Q (never the identity), complete in P (RCB algorithm 2).
    pub(crate) fn add_affine<C: CurveParams<L, F = F>>(&self, other: &Affine<F, L>) -> Self {
        let b3 = &C::B.add(&C::B).add(&C::B);
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let (x2, y2) = (&other.x, &other.y);
        let mut t0 = x1.mul(x2);
        let mut t1 = y1.mul(y2);
        let mut t3 = x2.add(y2);
        let mut t4 = x1.add(y1);
        t3 = t3.mul(&t4);
        t4 = t0.add(&t1);
        t3 = t3.sub(&t4);
        t4 = x2.mul(z1);
        t4 = t4.add(x1);
        let mut t5 = y2.mul(z1);
        t5 = t5.add(y1);
        let mut z3 = mul_a::<C, F, L>(&t4);
        let mut x3 = b3.mul(z1);
        z3 = x3.add(&z3);
        x3 = t1.sub(&z3);
        z3 = t1.add(&z3);
        let mut y3 = x3.mul(&z3);
        t1 = t0.add(&t0);
        t1 = t1.add(&t0);
        let mut t2 = mul_a::<C, F, L>(z1);
        t4 = b3.mul(&t4);
        t1 = t1.add(&t2);
        t2 = t0.sub(&t2);
        t2 = mul_a::<C, F, L>(&t2);
        t4 = t4.add(&t2);
        t0 = t1.mul(&t4);
        y3 = y3.add(&t0);
        t0 = t5.mul(&t4);
        x3 = x3.mul(&t3);
        x3 = x3.sub(&t0);
        t0 = t3.mul(&t1);
        z3 = z3.mul(&t5);
        z3 = z3.add(&t0);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// 2P, complete (RCB algorithm 3).
    pub(crate) fn double<C: CurveParams<L, F = F>>(&self) -> Self {
        let b3 = &C::B.add(&C::B).add(&C::B);
        let (x, y, z) = (&self.x, &self.y, &self.z);
        let mut t0 = x.square();
        let t1 = y.square();
        let mut t2 = z.square();
        let mut t3 = x.mul(y);
        t3 = t3.double();
        let mut z3 = x.mul(z);
        z3 = z3.double();
        let mut x3 = mul_a::<C, F, L>(&z3);
        let mut y3 = b3.mul(&t2);
        y3 = x3.add(&y3);
        x3 = t1.sub(&y3);
        y3 = t1.add(&y3);
        y3 = x3.mul(&y3);
        x3 = t3.mul(&x3);
        z3 = b3.mul(&z3);
        t2 = mul_a::<C, F, L>(&t2);
        t3 = t0.sub(&t2);
        t3 = mul_a::<C, F, L>(&t3);
        t3 = t3.add(&z3);
        z3 = t0.double();
        t0 = z3.add(&t0);
        t0 = t0.add(&t2);
        t0 = t0.mul(&t3);
        y3 = y3.add(&t0);
        t2 = y.mul(z);
        t2 = t2.double();
        t0 = t2.mul(&t3);
        x3 = x3.sub(&t0);
        z3 = t2.mul(&t1);
        z3 = z3.double();
        z3 = z3.double();
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Whether two points are equal (projectively), in constant time.
    #[cfg(test)]
    pub(crate) fn ct_eq_point(&self, other: &Self) -> Choice {
        let x = self.x.mul(&other.z).ct_eq(&other.x.mul(&self.z));
        let y = self.y.mul(&other.z).ct_eq(&other.y.mul(&self.z));
        let both_identity = self.is_identity().and(other.is_identity());
        let neither = self.is_identity().not().and(other.is_identity().not());
        both_identity.or(neither.and(x).and(y))
    }
}

/// The 4-bit window `index` (0 = least significant) of `scalar`.
#[inline]
fn nibble<const L: usize>(scalar: &Uint<L>, index: usize) -> u64 {
    let words = scalar.as_words();
    (words[index / 16] >> ((index % 16) * 4)) & 0xf
}

/// A point in Jacobian coordinates (x = X/Z², y = Y/Z³; Z = 0 is the identity), for
/// variable-time arithmetic on public points only (verification).
#[derive(Clone, Copy, Debug)]
struct Jacobian<F: FieldElement<L>, const L: usize> {
    x: F,
    y: F,
    z: F,
}

impl<F: FieldElement<L>, const L: usize> Jacobian<F, L> {
    const IDENTITY: Self = Self {
        x: F::ONE,
        y: F::ONE,
        z: F::ZERO,
    };

    fn is_identity(&self) -> bool {
        self.z.ct_eq(&F::ZERO).to_bool()
    }

    /// 2P (dbl-2001-b: 3M + 5S when a = −3).
    fn double<C: CurveParams<L, F = F>>(&self) -> Self {
        if self.is_identity() || self.y.ct_eq(&F::ZERO).to_bool() {
            return Self::IDENTITY;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let alpha = if C::A_IS_MINUS_3 {
            let t = self.x.sub(&delta).mul(&self.x.add(&delta));
            t.double().add(&t)
        } else {
            let xx = self.x.square();
            xx.double().add(&xx).add(&C::A.mul(&delta.square()))
        };
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma_sq8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma_sq8);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + Q for an affine Q, with the special cases (P = O, P = ±Q) handled by branches.
    fn add_affine<C: CurveParams<L, F = F>>(&self, q: &Affine<F, L>) -> Self {
        if self.is_identity() {
            return Self {
                x: q.x,
                y: q.y,
                z: F::ONE,
            };
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.ct_eq(&F::ZERO).to_bool() {
            return if r.ct_eq(&F::ZERO).to_bool() {
                self.double::<C>()
            } else {
                Self::IDENTITY
            };
        }
        let hh = h.square();
        let hhh = h.mul(&hh);
        let v = self.x.mul(&hh);
        let x3 = r.square().sub(&hhh).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&hhh));
        let z3 = self.z.mul(&h);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// The same point in homogeneous projective coordinates: (X·Z : Y : Z³).
    fn to_projective(self) -> Projective<F, L> {
        if self.is_identity() {
            return Projective::IDENTITY;
        }
        Projective {
            x: self.x.mul(&self.z),
            y: self.y,
            z: self.z.square().mul(&self.z),
        }
    }
}

/// k·P for a public point and a public scalar (verification only: variable time). Jacobian
/// doublings, 4-bit windows over an affine table of 1·P … 15·P.
pub(crate) fn mul_vartime<C: CurveParams<L>, const L: usize>(
    point: &Affine<C::F, L>,
    scalar: &Uint<L>,
) -> Projective<C::F, L> {
    let base = point.to_projective();
    let mut multiples = [base; 15];
    for j in 1..15 {
        multiples[j] = multiples[j - 1].add::<C>(&base);
    }
    if multiples.iter().any(|m| m.is_identity().to_bool()) {
        // Only a point of order below 16 gets here (never a valid key): use the general code.
        return mul::<C, L>(&base, scalar);
    }
    let mut table = [*point; 15];
    batch_to_affine(&multiples, &mut table);
    let mut acc = Jacobian::<C::F, L>::IDENTITY;
    for index in (0..L * 16).rev() {
        for _ in 0..4 {
            acc = acc.double::<C>();
        }
        let digit = nibble(scalar, index) as usize;
        if digit != 0 {
            acc = acc.add_affine::<C>(&table[digit - 1]);
        }
    }
    acc.to_projective()
}

/// k·P for any point P and secret k (constant time in k and P): fixed 4-bit windows from the top.
pub(crate) fn mul<C: CurveParams<L>, const L: usize>(
    point: &Projective<C::F, L>,
    scalar: &Uint<L>,
) -> Projective<C::F, L> {
    let mut table = [Projective::<C::F, L>::IDENTITY; 16];
    table[1] = *point;
    for i in 2..16 {
        table[i] = if i % 2 == 0 {
            table[i / 2].double::<C>()
        } else {
            table[i - 1].add::<C>(point)
        };
    }
    let mut acc = Projective::<C::F, L>::IDENTITY;
    for index in (0..L * 16).rev() {
        for _ in 0..4 {
            acc = acc.double::<C>();
        }
        let digit = nibble(scalar, index);
        let mut entry = Projective::<C::F, L>::IDENTITY;
        for (j, candidate) in table.iter().enumerate() {
            entry.ct_assign(candidate, Choice::from_u64_eq(j as u64, digit));
        }
        acc = acc.add::<C>(&entry);
        zeroize::Zeroize::zeroize(&mut entry);
    }
    for entry in table.iter_mut() {
        zeroize::Zeroize::zeroize(entry);
    }
    acc
}

/// Bits per window of the base-point multiplication (signed digits in [−16, 16]).
const BASE_WINDOW: usize = 5;
/// Table entries per window: 1·B … 16·B for that window's B = 32^i·G.
const BASE_ENTRIES: usize = 1 << (BASE_WINDOW - 1);

/// Precomputed multiples of the base point: `windows[i][j] = (j + 1)·32^i·G`, affine.
pub(crate) struct BaseTable<F: FieldElement<L>, const L: usize> {
    windows: Vec<[Affine<F, L>; BASE_ENTRIES]>,
}

/// Windows needed for an L-limb scalar: its bits plus one for the last carry of the recoding.
const fn base_windows(limbs: usize) -> usize {
    (limbs * 64) / BASE_WINDOW + 1
}

impl<F: FieldElement<L>, const L: usize> BaseTable<F, L> {
    /// Builds the table for a curve's base point (public data: variable time is fine here).
    pub(crate) fn build<C: CurveParams<L, F = F>>() -> Self {
        let count = base_windows(L);
        let mut windows = Vec::with_capacity(count);
        let mut base = C::G.to_projective();
        for _ in 0..count {
            let mut multiples = [Projective::<F, L>::IDENTITY; BASE_ENTRIES];
            multiples[0] = base;
            for j in 1..BASE_ENTRIES {
                multiples[j] = multiples[j - 1].add::<C>(&base);
            }
            let mut affine = [C::G; BASE_ENTRIES];
            batch_to_affine(&multiples, &mut affine);
            windows.push(affine);
            for _ in 0..BASE_WINDOW {
                base = base.double::<C>();
            }
        }
        Self { windows }
    }
}

/// Converts non-identity projective points to affine with one inversion (Montgomery's trick).
/// Only for public points: it takes variable time.
fn batch_to_affine<F: FieldElement<L>, const L: usize>(
    points: &[Projective<F, L>],
    out: &mut [Affine<F, L>],
) {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = F::ONE;
    for p in points {
        prefix.push(acc);
        acc = acc.mul(&p.z);
    }
    let mut inv = acc.invert();
    for i in (0..points.len()).rev() {
        let z_inv = inv.mul(&prefix[i]);
        inv = inv.mul(&points[i].z);
        out[i] = Affine {
            x: points[i].x.mul(&z_inv),
            y: points[i].y.mul(&z_inv),
        };
    }
}

/// `BASE_WINDOW` bits of `scalar` from bit `position` (0 past the top). Positions are public.
#[inline]
fn bits_at<const L: usize>(scalar: &Uint<L>, position: usize) -> u64 {
    let words = scalar.as_words();
    let (word, shift) = (position / 64, position % 64);
    let low = words.get(word).copied().unwrap_or(0) >> shift;
    let high = if shift + BASE_WINDOW > 64 {
        words.get(word + 1).copied().unwrap_or(0) << (64 - shift)
    } else {
        0
    };
    (low | high) & ((1 << BASE_WINDOW) - 1)
}

/// k·G for a secret k (constant time in k): signed 5-bit windows (digits in [−16, 16], recoded
/// with masks), one constant-time table scan, conditional negation and mixed addition per window.
pub(crate) fn mul_base<C: CurveParams<L>, const L: usize>(scalar: &Uint<L>) -> Projective<C::F, L> {
    let table = C::base_table();
    let mut acc = Projective::<C::F, L>::IDENTITY;
    let mut carry = 0u64;
    for (index, window) in table.windows.iter().enumerate() {
        let value = bits_at(scalar, index * BASE_WINDOW) + carry; // 0 ..= 32
                                                                  // Digits above 16 become value − 32 with a carry into the next window.
        let negative = (16u64.wrapping_sub(value) >> 63) & 1;
        let magnitude =
            value ^ ((value ^ (32u64.wrapping_sub(value))) & 0u64.wrapping_sub(negative));
        carry = negative;
        let mut entry = window[0];
        for (j, candidate) in window.iter().enumerate().skip(1) {
            entry.ct_assign(candidate, Choice::from_u64_eq(j as u64 + 1, magnitude));
        }
        let negated = entry.y.neg();
        entry
            .y
            .ct_assign(&negated, Choice::from_u64_eq(negative, 1));
        let sum = acc.add_affine::<C>(&entry);
        acc.ct_assign(&sum, Choice::from_u64_eq(magnitude, 0).not());
        entry.x.zeroize();
        entry.y.zeroize();
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{CryptoProA, Tc26A256, Tc26A512, TestCurve256, TestCurve512};

    /// Textbook affine double-and-add (variable time), the reference the fast code is checked against.
    fn reference_mul<C: CurveParams<L>, const L: usize>(
        point: &Affine<C::F, L>,
        scalar: &Uint<L>,
    ) -> Option<Affine<C::F, L>> {
        fn add<C: CurveParams<L>, const L: usize>(
            p: Option<Affine<C::F, L>>,
            q: Option<Affine<C::F, L>>,
        ) -> Option<Affine<C::F, L>> {
            let (p, q) = match (p, q) {
                (None, q) => return q,
                (p, None) => return p,
                (Some(p), Some(q)) => (p, q),
            };
            let lambda = if p.x.ct_eq(&q.x).to_bool() {
                if !p.y.ct_eq(&q.y).to_bool() || p.y.ct_eq(&C::F::ZERO).to_bool() {
                    return None;
                }
                let three = C::F::from_uint(&Uint::from_u64(3));
                let num = three.mul(&p.x.square()).add(&C::A);
                num.mul(&p.y.double().invert())
            } else {
                q.y.sub(&p.y).mul(&q.x.sub(&p.x).invert())
            };
            let x = lambda.square().sub(&p.x).sub(&q.x);
            let y = lambda.mul(&p.x.sub(&x)).sub(&p.y);
            Some(Affine { x, y })
        }
        let mut acc = None;
        for bit in (0..L * 64).rev() {
            acc = add::<C, L>(acc, acc);
            if scalar.bit_vartime(bit as u32) {
                acc = add::<C, L>(acc, Some(*point));
            }
        }
        acc
    }

    fn check_curve<C: CurveParams<L>, const L: usize>(seed: u64) {
        assert!(C::G.is_on_curve::<C>(), "G on curve");
        let q = order::<C, L>();
        // q·G = O with both multiplication routines.
        assert!(mul::<C, L>(&C::G.to_projective(), &q)
            .is_identity()
            .to_bool());
        assert!(mul_base::<C, L>(&q).is_identity().to_bool());
        // Pseudo-random scalars agree with the textbook reference.
        let mut state = seed;
        for _ in 0..3 {
            let mut words = [0u64; L];
            for w in words.iter_mut() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *w = state;
            }
            let k = Uint::<L>::from_words(words).rem_vartime(&order_nz::<C, L>());
            let expected = reference_mul::<C, L>(&C::G, &k).expect("k·G is not the identity");
            let by_base = mul_base::<C, L>(&k).to_affine().expect("not identity");
            let by_ladder = mul::<C, L>(&C::G.to_projective(), &k)
                .to_affine()
                .expect("not identity");
            let by_vartime = mul_vartime::<C, L>(&C::G, &k).to_affine();
            assert_eq!(by_base, expected);
            assert_eq!(by_ladder, expected);
            assert_eq!(by_vartime, Some(expected));
            assert!(expected.is_on_curve::<C>());
        }
        // Small scalars around the window and digit boundaries (16, 32, carries).
        for k in [
            1u64,
            2,
            15,
            16,
            17,
            31,
            32,
            33,
            48,
            16 * 32 + 17,
            1023,
            1024,
            32767,
        ] {
            let k = Uint::<L>::from_u64(k);
            let expected = reference_mul::<C, L>(&C::G, &k).expect("not identity");
            assert_eq!(mul_base::<C, L>(&k).to_affine(), Some(expected), "k = {k}");
            assert_eq!(
                mul::<C, L>(&C::G.to_projective(), &k).to_affine(),
                Some(expected)
            );
            assert_eq!(mul_vartime::<C, L>(&C::G, &k).to_affine(), Some(expected));
        }
        // q·G = O and (q − 1)·G + G = O through the variable-time path too (P = −Q case).
        assert!(mul_vartime::<C, L>(&C::G, &q).is_identity().to_bool());
        // q − 1 gives −G.
        let minus_one = q.wrapping_sub(&Uint::ONE);
        let minus_g = mul_base::<C, L>(&minus_one)
            .to_affine()
            .expect("not identity");
        assert_eq!(
            minus_g,
            Affine {
                x: C::G.x,
                y: C::G.y.neg()
            }
        );
        // Doubling and adding a point to itself agree; P + (−P) = O; O + P = P.
        let p = mul_base::<C, L>(&Uint::from_u64(12345));
        assert!(p.double::<C>().ct_eq_point(&p.add::<C>(&p)).to_bool());
        assert!(p.add::<C>(&p.neg()).is_identity().to_bool());
        assert!(Projective::IDENTITY.add::<C>(&p).ct_eq_point(&p).to_bool());
    }

    #[test]
    fn scalar_multiplication_matches_textbook_reference_on_every_curve() {
        check_curve::<CryptoProA, 4>(1);
        check_curve::<Tc26A256, 4>(2);
        check_curve::<Tc26A512, 8>(3);
        check_curve::<TestCurve256, 4>(4);
        check_curve::<TestCurve512, 8>(5);
    }
}
