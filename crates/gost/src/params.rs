//! The curve parameter sets, as published (big-endian hex): the two production curves NCA RK
//! uses, the TC26 256-bit curve of the (unconfirmed) 256-bit GOST 2015 keys, and the two test
//! curves of the GOST R 34.10-2012 worked examples, used only by the known-answer tests.
//!
//! Must never: be edited to make a test pass. Each set is checked by the tests (G on the curve,
//! q·G = O, and the standards' examples).

use std::sync::OnceLock;

#[cfg(test)]
use crypto_bigint::modular::ConstMontyForm;
use crypto_bigint::{const_monty_params, Uint, U256, U512};

use crate::curve::{Affine, BaseTable, CurveParams};
use crate::field::{PmElement, PseudoMersenne};

macro_rules! gost_curve {
    (
        $(#[$doc:meta])*
        $name:ident, $uint:ty, $limbs:literal, $bytes:literal, cofactor: $cofactor:literal,
        field: $field:ident $(($c:literal))?,
        p: $p:literal, q: $q:literal, a: $a:literal, b: $b:literal, x: $x:literal, y: $y:literal $(,)?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct $name;

        const _: () = {
            const_monty_params!(OrderModulus, $uint, $q);
            gost_curve!(@field $field $(($c))?, $uint, $limbs, $p);

            impl CurveParams<$limbs> for $name {
                type F = Field;
                type Q = OrderModulus;
                const BYTES: usize = $bytes;
                const HAS_COFACTOR: bool = $cofactor != 1;
                const A_IS_MINUS_3: bool = a_is_minus_3::<$limbs>($p, $a);
                const A: Field = fe($a);
                const B: Field = fe($b);
                const G: Affine<Field, $limbs> = Affine { x: fe($x), y: fe($y) };

                fn base_table() -> &'static BaseTable<Field, $limbs> {
                    static TABLE: OnceLock<BaseTable<Field, $limbs>> = OnceLock::new();
                    TABLE.get_or_init(BaseTable::build::<$name>)
                }
            }
        };
    };
    (@field pseudo_mersenne($c:literal), $uint:ty, $limbs:literal, $p:literal) => {
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct Modulus;
        impl PseudoMersenne<$limbs> for Modulus {
            const C: u64 = $c;
        }
        pub(crate) type Field = PmElement<Modulus, $limbs>;
        const fn fe(hex: &str) -> Field {
            PmElement::from_be_hex(hex)
        }
        // The declared c must describe p exactly.
        const _: () = assert!(
            Uint::<$limbs>::from_be_hex($p)
                .wrapping_add(&Uint::<$limbs>::from_u64($c))
                .is_zero()
                .to_bool()
        );
    };
    (@field montgomery, $uint:ty, $limbs:literal, $p:literal) => {
        const_monty_params!(FieldModulus, $uint, $p);
        pub(crate) type Field = ConstMontyForm<FieldModulus, $limbs>;
        const fn fe(hex: &str) -> Field {
            ConstMontyForm::new(&Uint::from_be_hex(hex))
        }
    };
}

/// Whether a = p − 3 (compile-time).
const fn a_is_minus_3<const L: usize>(p: &str, a: &str) -> bool {
    let p = Uint::<L>::from_be_hex(p);
    let a = Uint::<L>::from_be_hex(a);
    a.wrapping_add(&Uint::from_u64(3))
        .wrapping_sub(&p)
        .is_zero()
        .to_bool()
}

gost_curve! {
    /// id-GostR3410-2001-CryptoPro-A-ParamSet (RFC 4357 §11.4); NCA's 1.2.398.3.10.1.1.1.1.1
    /// (GOST 34.310-2004).
    CryptoProA, U256, 4, 32, cofactor: 1, field: pseudo_mersenne(617),
    p: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD97",
    q: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF6C611070995AD10045841B09B761B893",
    a: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD94",
    b: "00000000000000000000000000000000000000000000000000000000000000A6",
    x: "0000000000000000000000000000000000000000000000000000000000000001",
    y: "8D91E471E0989CDA27DF505A453F2B7635294F2DDF23E3B122ACC99C9E9F1E14",
}

gost_curve! {
    /// id-tc26-gost-3410-2012-256-paramSetA in Weierstrass form (RFC 7836 §A.2), cofactor 4;
    /// NCA's 1.2.398.3.10.1.1.2.1.1 (GOST 34.10-2015 256-bit, unconfirmed by samples).
    Tc26A256, U256, 4, 32, cofactor: 4, field: pseudo_mersenne(617),
    p: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD97",
    q: "400000000000000000000000000000000FD8CDDFC87B6635C115AF556C360C67",
    a: "C2173F1513981673AF4892C23035A27CE25E2013BF95AA33B22C656F277E7335",
    b: "295F9BAE7428ED9CCC20E7C359A9D41A22FCCD9108E17BF7BA9337A6F8AE9513",
    x: "91E38443A5E82C0D880923425712B2BB658B9196932E02C78B2582FE742DAA28",
    y: "32879423AB1A0375895786C4BB46E9565FDE0B5344766740AF268ADB32322E5C",
}

gost_curve! {
    /// id-tc26-gost-3410-12-512-paramSetA (RFC 7836 §A.1); NCA's 1.2.398.3.10.1.1.2.2.1
    /// (GOST 34.10-2015 512-bit).
    Tc26A512, U512, 8, 64, cofactor: 1, field: pseudo_mersenne(569),
    p: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDC7",
    q: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF27E69532F48D89116FF22B8D4E0560609B4B38ABFAD2B85DCACDB1411F10B275",
    a: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDC4",
    b: "E8C2505DEDFC86DDC1BD0B2B6667F1DA34B82574761CB0E879BD081CFD0B6265EE3CB090F30D27614CB4574010DA90DD862EF9D4EBEE4761503190785A71C760",
    x: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003",
    y: "7503CFE87A836AE3A61B8816E25450E6CE5E1C93ACF1ABC1778064FDCBEFA921DF1626BE4FD036E93D75E6A50E3A41E98028FE5FC235F5B889A589CB5215F2A4",
}

#[cfg(test)]
gost_curve! {
    /// The 256-bit test curve of GOST R 34.10-2012 appendix A.1 (= RFC 7091 §A.1, RFC 5832).
    TestCurve256, U256, 4, 32, cofactor: 1, field: montgomery,
    p: "8000000000000000000000000000000000000000000000000000000000000431",
    q: "8000000000000000000000000000000150FE8A1892976154C59CFC193ACCF5B3",
    a: "0000000000000000000000000000000000000000000000000000000000000007",
    b: "5FBFF498AA938CE739B8E022FBAFEF40563F6E6A3472FC2A514C0CE9DAE23B7E",
    x: "0000000000000000000000000000000000000000000000000000000000000002",
    y: "08E2A8A0E65147D4BD6316030E16D19C85C97F0A9CA267122B96ABBCEA7E8FC8",
}

#[cfg(test)]
gost_curve! {
    /// The 512-bit test curve of GOST R 34.10-2012 appendix A.2 (= RFC 7091 §A.2).
    TestCurve512, U512, 8, 64, cofactor: 1, field: montgomery,
    p: "4531ACD1FE0023C7550D267B6B2FEE80922B14B2FFB90F04D4EB7C09B5D2D15DF1D852741AF4704A0458047E80E4546D35B8336FAC224DD81664BBF528BE6373",
    q: "4531ACD1FE0023C7550D267B6B2FEE80922B14B2FFB90F04D4EB7C09B5D2D15DA82F2D7ECB1DBAC719905C5EECC423F1D86E25EDBE23C595D644AAF187E6E6DF",
    a: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000007",
    b: "1CFF0806A31116DA29D8CFA54E57EB748BC5F377E49400FDD788B649ECA1AC4361834013B2AD7322480A89CA58E0CF74BC9E540C2ADD6897FAD0A3084F302ADC",
    x: "24D19CC64572EE30F396BF6EBBFD7A6C5213B3B3D7057CC825F91093A68CD762FD60611262CD838DC6B60AA7EEE804E28BC849977FAC33B4B530F1B120248A9A",
    y: "2BB312A43BD2CE6E0D020613C857ACDDCFBF061E91E5F2C3F32447C259F39B2C83AB156D77F1496BF7EB3351E1EE4E43DC1A18B91B24640B6DBB92CB1ADD371E",
}
