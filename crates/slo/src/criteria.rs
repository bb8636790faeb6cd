//! The criterion grammar of `slo.yaml` (`<=+10%`, `<600`, `>-5`, …) and how a criterion is checked.

use crate::gofloat;

/// Comparison operator of a criterion; `measured <op> target` with plain float semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

/// What the number of a criterion is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// `<600`: the number itself is the target.
    Absolute,
    /// `<=+10%`, `>-5%`, `<10%`: baseline · (100 ± n) / 100. A `%` without sign is an increase (keptn #1498).
    Percent { increase: bool },
    /// `<=+10`, `>=-5`: baseline ± n.
    Delta { increase: bool },
}

/// One parsed criterion string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criterion {
    pub operator: Operator,
    pub reference: Reference,
    pub value: f64,
}

/// Why a criterion string was rejected; the texts are keptn's, they end up in evaluation messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CriterionError {
    /// Does not start with an operator character.
    #[error("invalid criteria string")]
    InvalidString,
    /// The part after operator, sign and `%` is not a number.
    #[error("could not parse criteria target value")]
    TargetValue,
}

/// Tried in this order, so `<=` wins over `<`. `==`, `=>`, `=<` leave an operator character in the
/// number, which then fails to parse, exactly as in keptn.
const OPERATORS: [(&str, Operator); 5] = [
    ("<=", Operator::LessOrEqual),
    ("<", Operator::Less),
    ("=", Operator::Equal),
    (">=", Operator::GreaterOrEqual),
    (">", Operator::Greater),
];

impl Criterion {
    /// Parses keptn's grammar: spaces (not tabs) are dropped, the string must start with one of `<|=>`
    /// (keptn's prefix regex `^[<|=>]{1,2}[+-]?\d*\.?\d*%?` has no end anchor, so that is all it
    /// checks), then operator, optional trailing `%`, optional sign, and a Go float.
    pub fn parse(text: &str) -> Result<Criterion, CriterionError> {
        let compact: String = text.chars().filter(|c| *c != ' ').collect();
        if !compact.starts_with(['<', '|', '=', '>']) {
            return Err(CriterionError::InvalidString);
        }
        let (operator, rest) = OPERATORS
            .iter()
            .find_map(|(token, op)| compact.strip_prefix(token).map(|rest| (Some(*op), rest)))
            .unwrap_or((None, compact.as_str()));
        let (percent, rest) = match rest.strip_suffix('%') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let (sign, rest) = match rest.as_bytes().first() {
            Some(b'+') => (Some(true), &rest[1..]),
            Some(b'-') => (Some(false), &rest[1..]),
            _ => (None, rest),
        };
        let value = gofloat::parse(rest).ok_or(CriterionError::TargetValue)?;
        // Only a leading `|` gets here without operator, and it never parses as a number.
        let operator = operator.ok_or(CriterionError::TargetValue)?;
        let reference = match (percent, sign) {
            (true, sign) => Reference::Percent { increase: sign.unwrap_or(true) },
            (false, Some(increase)) => Reference::Delta { increase },
            (false, None) => Reference::Absolute,
        };
        Ok(Criterion { operator, reference, value })
    }

    /// Whether the target depends on previous evaluations.
    pub fn is_relative(&self) -> bool {
        self.reference != Reference::Absolute
    }

    /// The value to compare with; `None` for a relative criterion without a usable baseline.
    pub fn target(&self, baseline: Option<f64>) -> Option<f64> {
        let n = self.value;
        match self.reference {
            Reference::Absolute => Some(n),
            Reference::Percent { increase: true } => baseline.map(|b| b * (100.0 + n) / 100.0),
            Reference::Percent { increase: false } => baseline.map(|b| b * (100.0 - n) / 100.0),
            Reference::Delta { increase: true } => baseline.map(|b| b + n),
            Reference::Delta { increase: false } => baseline.map(|b| b - n),
        }
    }

    /// `measured <op> target`; `=` is exact float equality, as in keptn.
    pub fn holds(&self, measured: f64, target: f64) -> bool {
        match self.operator {
            Operator::Less => measured < target,
            Operator::LessOrEqual => measured <= target,
            Operator::Equal => measured == target,
            Operator::GreaterOrEqual => measured >= target,
            Operator::Greater => measured > target,
        }
    }

    /// keptn's outcome for one criterion: a relative criterion without baseline is satisfied and
    /// reports target 0 (tests "BUG 1125", "BUG 1263"). Returns `(satisfied, reported target)`.
    pub fn check(&self, measured: f64, baseline: Option<f64>) -> (bool, f64) {
        match self.target(baseline) {
            Some(target) => (self.holds(measured, target), target),
            None => (true, 0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operator::*;

    fn parsed(text: &str) -> Criterion {
        Criterion::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn absolute_operators() {
        for (text, operator) in
            [("<10", Less), ("<=10", LessOrEqual), ("=10", Equal), (">=10", GreaterOrEqual), (">10", Greater)]
        {
            assert_eq!(parsed(text), Criterion { operator, reference: Reference::Absolute, value: 10.0 }, "{text}");
        }
    }

    #[test]
    fn relative_forms() {
        assert_eq!(
            parsed(">-10%"),
            Criterion { operator: Greater, reference: Reference::Percent { increase: false }, value: 10.0 }
        );
        assert_eq!(
            parsed("<=+10.5%"),
            Criterion { operator: LessOrEqual, reference: Reference::Percent { increase: true }, value: 10.5 }
        );
        assert_eq!(
            parsed("<=+10"),
            Criterion { operator: LessOrEqual, reference: Reference::Delta { increase: true }, value: 10.0 }
        );
        assert_eq!(
            parsed(">=-5"),
            Criterion { operator: GreaterOrEqual, reference: Reference::Delta { increase: false }, value: 5.0 }
        );
    }

    #[test]
    fn spaces_are_stripped_and_unsigned_percent_is_an_increase() {
        let expected =
            Criterion { operator: LessOrEqual, reference: Reference::Percent { increase: true }, value: 10.0 };
        assert_eq!(parsed("  <=+10   %"), expected);
        assert_eq!(parsed("  <=10%"), expected);
        assert!(parsed("<10%").is_relative());
    }

    #[test]
    fn invalid_strings() {
        assert_eq!(Criterion::parse("10"), Err(CriterionError::InvalidString));
        assert_eq!(Criterion::parse("!=10"), Err(CriterionError::InvalidString));
        assert_eq!(Criterion::parse(""), Err(CriterionError::InvalidString));
        assert_eq!(Criterion::parse("\t<10"), Err(CriterionError::InvalidString));
        for text in ["==10", "=>10", "=<10", "<=abc", "<10%%", "|10", "<", "<=+", "<<5", "<=+-5%x"] {
            assert_eq!(Criterion::parse(text), Err(CriterionError::TargetValue), "{text}");
        }
    }

    #[test]
    fn go_float_syntax_after_the_sign() {
        // Go accepts a second sign once keptn stripped the first; so do we.
        assert_eq!(parsed("<=+-5").value, -5.0);
        assert_eq!(parsed("<1e3").value, 1000.0);
        assert_eq!(Criterion::parse("<1e400"), Err(CriterionError::TargetValue));
    }

    #[test]
    fn operators_compare_plain_floats() {
        let c = |text| parsed(text);
        assert!(c(">9").holds(10.0, 9.0));
        assert!(c(">=10").holds(10.0, 10.0));
        assert!(c("<=10").holds(10.0, 10.0));
        assert!(!c("<10").holds(10.0, 10.0));
        assert!(!c(">10").holds(10.0, 10.0));
        assert!(c("=10").holds(10.0, 10.0));
    }

    #[test]
    fn targets_from_baseline() {
        assert_eq!(parsed("<=+10%").target(Some(200.0)), Some(220.0));
        assert_eq!(parsed(">-5%").target(Some(200.0)), Some(190.0));
        assert_eq!(parsed("<=+10").target(Some(200.0)), Some(210.0));
        assert_eq!(parsed(">=-5").target(Some(200.0)), Some(195.0));
        assert_eq!(parsed("<600").target(Some(200.0)), Some(600.0));
        assert_eq!(parsed("<600").target(None), Some(600.0));
        assert_eq!(parsed("<=+10%").target(None), None);
    }

    #[test]
    fn without_baseline_relative_criteria_are_satisfied_with_target_zero() {
        assert_eq!(parsed("<=+20%").check(1011.0, None), (true, 0.0));
        assert_eq!(parsed("<500").check(1011.0, None), (false, 500.0));
    }
}
