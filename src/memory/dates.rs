//! The day a sentence speaks of: "tomorrow", "on Friday", "le 12 décembre",
//! turned into a calendar date from the day it was said.
//!
//! Days are counted in UTC: the process has no reliable local time zone
//! without a time-zone database, and a day's error a few hours around
//! midnight is the price. Dates are plain proleptic Gregorian arithmetic
//! (days since 1970-01-01), which is all a memory's date needs.

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(i64);

const MS_PER_DAY: i64 = 86_400_000;

const WEEKDAYS: [[&str; 2]; 7] = [
    ["monday", "lundi"],
    ["tuesday", "mardi"],
    ["wednesday", "mercredi"],
    ["thursday", "jeudi"],
    ["friday", "vendredi"],
    ["saturday", "samedi"],
    ["sunday", "dimanche"],
];

const MONTHS: [&[&str]; 12] = [
    &["january", "janvier", "jan"],
    &["february", "février", "fevrier", "feb"],
    &["march", "mars", "mar"],
    &["april", "avril", "apr"],
    &["may", "mai"],
    &["june", "juin", "jun"],
    &["july", "juillet", "jul"],
    &["august", "août", "aout", "aug"],
    &["september", "septembre", "sep", "sept"],
    &["october", "octobre", "oct"],
    &["november", "novembre", "nov"],
    &["december", "décembre", "decembre", "dec"],
];

/// Small counts written out, for "in three days" / "dans trois jours".
const COUNTS: [[&str; 2]; 10] = [
    ["one", "un"],
    ["two", "deux"],
    ["three", "trois"],
    ["four", "quatre"],
    ["five", "cinq"],
    ["six", "six"],
    ["seven", "sept"],
    ["eight", "huit"],
    ["nine", "neuf"],
    ["ten", "dix"],
];

impl Day {
    /// The day (UTC) of a Unix time in milliseconds.
    pub fn of_ms(ms: i64) -> Self {
        Self(ms.div_euclid(MS_PER_DAY))
    }

    /// The day of a civil date, if it exists.
    pub fn from_civil(year: i64, month: u32, day: u32) -> Option<Self> {
        let days_in = match month {
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            1..=12 => 31,
            _ => return None,
        };
        if day == 0 || day > days_in {
            return None;
        }
        // Days from civil, after Howard Hinnant's public-domain algorithm.
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month = i64::from(month);
        let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        Some(Self(era * 146_097 + day_of_era - 719_468))
    }

    /// Its year, month (1–12) and day of the month.
    pub fn civil(self) -> (i64, u32, u32) {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    /// 0 for Monday to 6 for Sunday (1970-01-01 was a Thursday).
    pub fn weekday(self) -> usize {
        (self.0 + 3).rem_euclid(7) as usize
    }

    /// The day `days` later.
    pub fn plus(self, days: i64) -> Self {
        Self(self.0 + days)
    }

    /// `YYYY-MM-DD`.
    pub fn iso(self) -> String {
        let (year, month, day) = self.civil();
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// The day an ISO date (`YYYY-MM-DD`) names, if it is one.
    pub fn parse_iso(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month = parts.next()?.parse().ok()?;
        let day = parts.next()?.parse().ok()?;
        Self::from_civil(year, month, day)
    }

    /// Like "Friday 4 December 2026", for a prompt.
    pub fn spelled(self) -> String {
        const NAMES: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
        const MONTH_NAMES: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let (year, month, day) = self.civil();
        format!("{} {day} {} {year}", NAMES[self.weekday()], MONTH_NAMES[month as usize - 1])
    }
}

/// The day `words` (a folded sentence: lowercase, words split by single
/// spaces) speaks of, said on `today`; `None` when it names none.
pub fn day_in(words: &[&str], today: Day) -> Option<Day> {
    let has = |phrase: &[&str]| words.windows(phrase.len()).any(|window| window == phrase);
    if has(&["day", "after", "tomorrow"]) || has(&["après-demain"]) || has(&["apres-demain"]) {
        return Some(today.plus(2));
    }
    if has(&["tomorrow"]) || has(&["demain"]) {
        return Some(today.plus(1));
    }
    if has(&["today"]) || has(&["tonight"]) || has(&["aujourd'hui"]) || has(&["ce", "soir"]) {
        return Some(today);
    }
    if has(&["next", "week"]) || has(&["semaine", "prochaine"]) {
        return Some(today.plus(7));
    }
    for (index, word) in words.iter().enumerate() {
        // "in three days", "dans 3 jours"
        if (*word == "in" || *word == "dans")
            && let (Some(count), Some(unit)) = (words.get(index + 1), words.get(index + 2))
            && let Some(count) = count_of(count)
            && ["days", "day", "jours", "jour"].contains(unit)
        {
            return Some(today.plus(count));
        }
        // "12 december", "le 12 décembre", "december 12", "december 12th"
        if let Some(month) = month_of(word) {
            let day_before = index.checked_sub(1).and_then(|before| day_of_month(words[before]));
            let day_after = words.get(index + 1).and_then(|after| day_of_month(after));
            if let Some(day) = day_before.or(day_after) {
                let (year, ..) = today.civil();
                let this_year = Day::from_civil(year, month, day)?;
                // A day already past this year is next year's.
                return if this_year < today { Day::from_civil(year + 1, month, day) } else { Some(this_year) };
            }
        }
        // "on friday", "next friday", "vendredi": the next one after today.
        if let Some(weekday) = WEEKDAYS.iter().position(|names| names.contains(word)) {
            let ahead = (weekday + 7 - today.weekday()) % 7;
            return Some(today.plus(if ahead == 0 { 7 } else { ahead as i64 }));
        }
    }
    None
}

fn count_of(word: &str) -> Option<i64> {
    word.parse()
        .ok()
        .filter(|count| (1..=366).contains(count))
        .or_else(|| COUNTS.iter().position(|names| names.contains(&word)).map(|index| index as i64 + 1))
}

fn month_of(word: &str) -> Option<u32> {
    MONTHS.iter().position(|names| names.contains(&word)).map(|index| index as u32 + 1)
}

/// "12", "12th", "1st", "1er".
fn day_of_month(word: &str) -> Option<u32> {
    let digits = word.trim_end_matches(|c: char| c.is_alphabetic());
    let suffix = &word[digits.len()..];
    if !["", "st", "nd", "rd", "th", "er"].contains(&suffix) {
        return None;
    }
    digits.parse().ok().filter(|day| (1..=31).contains(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thursday 3 December 2026.
    fn thursday() -> Day {
        Day::from_civil(2026, 12, 3).unwrap()
    }

    fn day(sentence: &str) -> Option<String> {
        let words: Vec<&str> = sentence.split(' ').collect();
        day_in(&words, thursday()).map(Day::iso)
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(Day::from_civil(1970, 1, 1), Some(Day(0)));
        assert_eq!(Day(0).weekday(), 3, "a Thursday");
        assert_eq!(thursday().weekday(), 3);
        assert_eq!(thursday().spelled(), "Thursday 3 December 2026");
        assert_eq!(Day::from_civil(2024, 2, 30), None);
        for days in [-1, 0, 59, 11_016, 20_000, 2_932_896] {
            let (year, month, day) = Day(days).civil();
            assert_eq!(Day::from_civil(year, month, day), Some(Day(days)));
            assert_eq!(Day::parse_iso(&Day(days).iso()), Some(Day(days)), "{days}");
        }
        assert_eq!(Day::of_ms(1_764_806_400_000 + 5), Day::from_civil(2025, 12, 4).unwrap());
    }

    #[test]
    fn sentences_name_their_days() {
        assert_eq!(day("i have an interview tomorrow").as_deref(), Some("2026-12-04"));
        assert_eq!(day("j'ai un examen après-demain").as_deref(), Some("2026-12-05"));
        assert_eq!(day("on friday i fly").as_deref(), Some("2026-12-04"));
        assert_eq!(day("jeudi prochain").as_deref(), Some("2026-12-10"), "today's weekday is next week's");
        assert_eq!(day("my birthday is on march 12th").as_deref(), Some("2027-03-12"));
        assert_eq!(day("le 24 décembre").as_deref(), Some("2026-12-24"));
        assert_eq!(day("in three days").as_deref(), Some("2026-12-06"));
        assert_eq!(day("dans 10 jours").as_deref(), Some("2026-12-13"));
        assert_eq!(day("next week").as_deref(), Some("2026-12-10"));
        assert_eq!(day("i may come in may"), None, "a month alone is no day");
        assert_eq!(day("i love jazz"), None);
    }
}
