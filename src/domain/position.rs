//! A position in one symbol, as the fold of the account's fills in the order they were recorded:
//! its signed quantity (below zero, short), its average cost, and the profit or loss its closing
//! fills realized. All of it exact in cents and shares.
//!
//! The rule, one fill at a time:
//! - a fill that opens or adds to the position moves the average cost to the weighted mean of the
//!   shares held and the fill, rounded half to even to the cent;
//! - a fill against the position closes up to its size at the average cost, realizing
//!   `(price − average) × shares` for a long and the opposite for a short; what is left of the fill
//!   opens a position the other way at the fill's price;
//! - a flat position has no average cost (zero).

use super::{Cents, Side};

/// A position, and how many fills made it (the sequence number of the last one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub qty: i64,
    pub avg_cost: Cents,
    pub realized: Cents,
    pub fills: i64,
}

impl Position {
    /// The position after a fill of `qty` shares at `price` on `side`; None when an amount would
    /// overflow.
    pub fn apply(self, side: Side, qty: i64, price: Cents) -> Option<Position> {
        let signed = match side {
            Side::Buy => qty,
            Side::Sell => qty.checked_neg()?,
        };
        let fills = self.fills.checked_add(1)?;
        let same_way = self.qty == 0 || (self.qty > 0) == (signed > 0);
        if same_way {
            let held = i128::from(self.qty.unsigned_abs());
            let added = i128::from(qty);
            let cost = held * i128::from(self.avg_cost.0) + added * i128::from(price.0);
            let avg = i64::try_from(half_even(cost, held + added)?).ok()?;
            return Some(Position {
                qty: self.qty.checked_add(signed)?,
                avg_cost: Cents(avg),
                realized: self.realized,
                fills,
            });
        }
        let closed = qty.min(self.qty.unsigned_abs().try_into().ok()?);
        let per_share = match self.qty > 0 {
            true => price.0.checked_sub(self.avg_cost.0)?,
            false => self.avg_cost.0.checked_sub(price.0)?,
        };
        let realized = self
            .realized
            .0
            .checked_add(per_share.checked_mul(closed)?)?;
        let qty_after = self.qty.checked_add(signed)?;
        let avg_cost = match qty_after {
            0 => Cents::ZERO,
            // Turned the other way: the rest of the fill opens at its price.
            q if (q > 0) != (self.qty > 0) => price,
            _ => self.avg_cost,
        };
        Some(Position {
            qty: qty_after,
            avg_cost,
            realized: Cents(realized),
            fills,
        })
    }

    /// What the position would make or lose if closed at `last`.
    pub fn unrealized(&self, last: Cents) -> Option<Cents> {
        last.0
            .checked_sub(self.avg_cost.0)?
            .checked_mul(self.qty)
            .map(Cents)
    }
}

/// `numerator / denominator` (denominator > 0), rounded half to even.
fn half_even(numerator: i128, denominator: i128) -> Option<i128> {
    if denominator <= 0 {
        return None;
    }
    let (quotient, remainder) = (
        numerator.div_euclid(denominator),
        numerator.rem_euclid(denominator),
    );
    let twice = remainder.checked_mul(2)?;
    Some(match twice.cmp(&denominator) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn fold(fills: &[(Side, i64, i64)]) -> Position {
        fills
            .iter()
            .fold(Position::default(), |p, (side, qty, price)| {
                p.apply(*side, *qty, Cents(*price)).expect("no overflow")
            })
    }

    #[test]
    fn buys_average_half_to_even_and_a_sell_realizes_against_the_average() {
        // 1 at 1.00 and 1 at 1.01: 100.5 cents rounds to the even 100.
        let p = fold(&[(Side::Buy, 1, 100), (Side::Buy, 1, 101)]);
        assert_eq!((p.qty, p.avg_cost, p.realized), (2, Cents(100), Cents(0)));
        // 1 at 1.01 and 1 at 1.02: 101.5 rounds to the even 102.
        let p = fold(&[(Side::Buy, 1, 101), (Side::Buy, 1, 102)]);
        assert_eq!(p.avg_cost, Cents(102));
        let p = fold(&[(Side::Buy, 10, 1_000), (Side::Sell, 4, 1_250)]);
        assert_eq!(
            (p.qty, p.avg_cost, p.realized),
            (6, Cents(1_000), Cents(1_000))
        );
        assert_eq!(p.unrealized(Cents(900)), Some(Cents(-600)));
        assert_eq!(p.fills, 2);
    }

    #[test]
    fn a_sell_past_the_position_opens_a_short_at_its_price_and_a_buy_covers_it() {
        let p = fold(&[(Side::Buy, 3, 1_000), (Side::Sell, 5, 900)]);
        assert_eq!(
            (p.qty, p.avg_cost, p.realized),
            (-2, Cents(900), Cents(-300))
        );
        // A short gains as the price falls.
        assert_eq!(p.unrealized(Cents(800)), Some(Cents(200)));
        let covered = p.apply(Side::Buy, 2, Cents(850)).unwrap();
        assert_eq!(
            (covered.qty, covered.avg_cost, covered.realized),
            (0, Cents::ZERO, Cents(-200))
        );
        assert_eq!(covered.unrealized(Cents(1)), Some(Cents(0)));
    }

    pub(crate) fn a_fill() -> impl Strategy<Value = (Side, i64, i64)> {
        (
            prop_oneof![Just(Side::Buy), Just(Side::Sell)],
            1i64..=1_000,
            1i64..=100_000,
        )
    }

    proptest! {
        /// Realized and unrealized together are the cash the fills moved plus what the shares
        /// held are worth, but for the average's rounding: at most half a cent on each share
        /// held after each fill that added to the position.
        #[test]
        fn pnl_is_the_cash_flow_but_for_rounding(
            fills in proptest::collection::vec(a_fill(), 0..60),
            last in 1i64..=100_000,
        ) {
            let p = fold(&fills);
            let mut cash = 0i128;
            let (mut held, mut half_cents_of_rounding) = (0i128, 0i128);
            for (side, n, price) in &fills {
                let (n, price) = (i128::from(*n), i128::from(*price));
                let delta = if *side == Side::Buy { n } else { -n };
                cash -= delta * price;
                if held == 0 || held.signum() == delta.signum() {
                    half_cents_of_rounding += (held + delta).abs();
                }
                held += delta;
            }
            let worth = cash + held * i128::from(last);
            let pnl = i128::from(p.realized.0) + i128::from(p.unrealized(Cents(last)).unwrap().0);
            prop_assert!((pnl - worth).abs() * 2 <= half_cents_of_rounding, "{pnl} vs {worth}");
        }

        /// Without rounding (every fill at one price) nothing is made or lost, whatever the order.
        #[test]
        fn at_one_price_nothing_is_realized(
            sides in proptest::collection::vec((any::<bool>(), 1i64..=1_000), 1..40),
            price in 1i64..=100_000,
        ) {
            let fills: Vec<_> = sides
                .iter()
                .map(|(buy, n)| (if *buy { Side::Buy } else { Side::Sell }, *n, price))
                .collect();
            let p = fold(&fills);
            prop_assert_eq!(p.realized, Cents::ZERO);
            prop_assert_eq!(p.avg_cost, if p.qty == 0 { Cents::ZERO } else { Cents(price) });
            prop_assert_eq!(p.unrealized(Cents(price)), Some(Cents::ZERO));
        }
    }
}
