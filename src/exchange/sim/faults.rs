//! Fault injection: the rates in force and the seeded dice that decide each fault.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{DuplicatePlacement, FaultArgs};

/// Fault rates in force, changeable at run time through `PUT /admin/faults`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Faults {
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    pub reorder_rate: f64,
    pub error_rate: f64,
    pub lost_response_rate: f64,
    #[schema(value_type = String, pattern = "^(ok|conflict)$")]
    pub duplicate_placement: DuplicatePlacement,
}

impl From<FaultArgs> for Faults {
    fn from(a: FaultArgs) -> Self {
        Faults {
            drop_rate: a.drop_rate,
            duplicate_rate: a.duplicate_rate,
            reorder_rate: a.reorder_rate,
            error_rate: a.error_rate,
            lost_response_rate: a.lost_response_rate,
            duplicate_placement: a.duplicate_placement,
        }
    }
}

/// A partial update: fields left out keep their value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub drop_rate: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub duplicate_rate: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub reorder_rate: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub error_rate: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub lost_response_rate: Option<f64>,
    #[schema(value_type = Option<String>, pattern = "^(ok|conflict)$")]
    pub duplicate_placement: Option<DuplicatePlacement>,
}

impl Faults {
    /// Applies `update`, or refuses it whole when a rate is outside 0..=1.
    pub fn apply(&mut self, update: &FaultsUpdate) -> Result<(), String> {
        let fields = [
            (update.drop_rate, &mut self.drop_rate),
            (update.duplicate_rate, &mut self.duplicate_rate),
            (update.reorder_rate, &mut self.reorder_rate),
            (update.error_rate, &mut self.error_rate),
            (update.lost_response_rate, &mut self.lost_response_rate),
        ];
        if fields
            .iter()
            .any(|(new, _)| new.is_some_and(|r| !(0.0..=1.0).contains(&r)))
        {
            return Err("every rate is a share between 0 and 1".into());
        }
        for (new, field) in fields {
            if let Some(rate) = new {
                *field = rate;
            }
        }
        if let Some(mode) = update.duplicate_placement {
            self.duplicate_placement = mode;
        }
        Ok(())
    }
}

/// What happens to one REST request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestFault {
    None,
    /// Answer 503 and do nothing.
    Error,
    /// Do it, then close the connection without an answer.
    LostResponse,
}

/// How one push event is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPlan {
    /// 0 when dropped, 2 or 3 when duplicated.
    pub copies: u32,
    /// Non-zero when the event is held back behind later ones.
    pub delay: Duration,
}

/// Independent seeded streams for REST and push faults: the same seed and the same sequence of
/// requests or events give the same faults, whatever the market does meanwhile.
pub struct Dice {
    rest: StdRng,
    push: StdRng,
}

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self {
            rest: StdRng::seed_from_u64(seed ^ 0x5245_5354),
            push: StdRng::seed_from_u64(seed ^ 0x5055_5348),
        }
    }

    pub fn rest(&mut self, faults: &Faults) -> RestFault {
        let roll: f64 = self.rest.random();
        if roll < faults.error_rate {
            RestFault::Error
        } else if roll < faults.error_rate + faults.lost_response_rate {
            RestFault::LostResponse
        } else {
            RestFault::None
        }
    }

    pub fn push(&mut self, faults: &Faults, reorder_delay: Duration) -> PushPlan {
        let dropped = self.push.random_bool(faults.drop_rate);
        let duplicated = self.push.random_bool(faults.duplicate_rate);
        let reordered = self.push.random_bool(faults.reorder_rate);
        let extra = self.push.random_range(2..=3);
        let copies = match (dropped, duplicated) {
            (true, _) => 0,
            (false, true) => extra,
            (false, false) => 1,
        };
        let delay = if reordered {
            reorder_delay
        } else {
            Duration::ZERO
        };
        PushPlan { copies, delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certain_faults_always_happen_and_absent_ones_never() {
        let mut dice = Dice::new(9);
        let always = Faults {
            drop_rate: 1.0,
            error_rate: 1.0,
            ..Faults::default()
        };
        let never = Faults::default();
        for _ in 0..200 {
            assert_eq!(dice.rest(&always), RestFault::Error);
            assert_eq!(dice.rest(&never), RestFault::None);
            assert_eq!(dice.push(&always, Duration::ZERO).copies, 0);
            assert_eq!(
                dice.push(&never, Duration::ZERO),
                PushPlan {
                    copies: 1,
                    delay: Duration::ZERO
                }
            );
        }
        let dup = Faults {
            duplicate_rate: 1.0,
            ..Faults::default()
        };
        assert!((0..50).all(|_| dice.push(&dup, Duration::ZERO).copies >= 2));
    }

    #[test]
    fn the_same_seed_rolls_the_same_faults() {
        let faults = Faults {
            error_rate: 0.3,
            lost_response_rate: 0.2,
            drop_rate: 0.5,
            ..Faults::default()
        };
        let roll = |seed| {
            let mut dice = Dice::new(seed);
            (0..100)
                .map(|_| {
                    (
                        dice.rest(&faults),
                        dice.push(&faults, Duration::ZERO).copies,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(roll(42), roll(42));
        assert_ne!(roll(42), roll(43));
    }

    #[test]
    fn updates_are_partial_and_checked() {
        let mut faults = Faults {
            drop_rate: 0.1,
            ..Faults::default()
        };
        faults
            .apply(&FaultsUpdate {
                error_rate: Some(0.5),
                ..FaultsUpdate::default()
            })
            .unwrap();
        assert_eq!((faults.drop_rate, faults.error_rate), (0.1, 0.5));
        assert!(faults
            .apply(&FaultsUpdate {
                drop_rate: Some(2.0),
                ..FaultsUpdate::default()
            })
            .is_err());
        assert_eq!(faults.drop_rate, 0.1);
    }
}
