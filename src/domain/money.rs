use std::fmt;

/// An amount of money in integer fen (1/100 yuan). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fen(i64);

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub const fn new(amount_fen: i64) -> Self {
        Fen(amount_fen)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// `-?\d+\.\d\d`, the contract's yuan format for CSV cells.
    pub fn to_yuan_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} fen", self.0)
    }
}

/// A number of alliance points. May be negative only as a balance after a clawback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Points(i64);

impl Points {
    pub const ZERO: Points = Points(0);

    pub const fn new(points: i64) -> Self {
        Points(points)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_strings_have_two_decimals() {
        assert_eq!(Fen::new(0).to_yuan_string(), "0.00");
        assert_eq!(Fen::new(5).to_yuan_string(), "0.05");
        assert_eq!(Fen::new(-1234).to_yuan_string(), "-12.34");
        assert_eq!(Fen::new(i64::MIN).to_yuan_string(), "-92233720368547758.08");
    }
}
