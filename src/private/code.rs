//! The code a person reads out: a number and three words, made at random,
//! normalised the same way on both sides, and checked and completed against
//! the word lists while it is typed.
//!
//! A generated code is `N-ADJECTIVE-ADJECTIVE-NOUNS`: the number, then three
//! words of 256 each (24 bits). A direct server's number runs from 0 to 99,
//! so its code is one of 100 × 2^24 (30.6 bits); through a relay the number
//! is the room's, which anyone may see, and the words alone are secret.
//! `docs/private.md` shows why that is enough with the server's limit of
//! wrong codes over its whole run.

use std::fmt;
use std::io;

/// How many values a direct server's number takes (0 to 99).
const NUMBERS: u32 = 100;

/// How many words follow the number in a generated code.
pub const WORDS: usize = 3;

/// Combinations of the words: 256 per word.
const WORD_CODES: u32 = 1 << (8 * WORDS);

/// The first and second words: 256 short, common English adjectives.
const ADJECTIVES: &str = concat!(
    "able airy amber angry apple arctic awake bare basic beige best big black bland blank ",
    "blue blunt bold boxy brave brief bright brisk broad brown bumpy busy calm cheap ",
    "cheery chewy chilly clean clear clever close cloudy cold cool coral cosy crazy crisp ",
    "curly cute damp dandy dark dear deep dizzy dry dull dusty eager early easy empty ",
    "epic even exact extra faint fair fancy far fast fierce fine firm first fit flat ",
    "fluffy foggy fond frank free fresh frosty full funny furry fuzzy giant giddy glad ",
    "glossy gold good grand great green grey hairy handy happy hard hasty heavy hidden ",
    "high holy honest hot huge hungry icy idle jolly juicy jumpy keen kind large last ",
    "late lazy lean left level light lilac live local lone long loose loud loved low ",
    "loyal lucky lumpy magic major mellow merry messy mild minor misty modern moody muddy ",
    "narrow neat new next nice nimble noble noisy odd oily okay old olive only open ",
    "orange oval pale perky pink plain plump polite pretty prime proud pure purple quick ",
    "quiet rainy rapid rare raw ready real red regal rich right rigid ripe rosy rough ",
    "round royal rusty safe salty same sandy shaky sharp shiny short shy silent silly ",
    "silver simple slim slow small smart smoky smooth snowy soft solid spare spicy steep ",
    "sticky stiff stony sturdy sunny super sweet swift tall tame tart thick thin tidy ",
    "tight tiny tired tough true urban vast violet vivid warm wavy weak wet white whole ",
    "wide wild windy wise witty woolly wry yellow young zany",
);

/// The third word: 256 short, common English plural nouns. No word of a
/// list starts another word of the same list, so a whole word is never a
/// prefix still to complete (a test holds it).
const NOUNS: &str = concat!(
    "acorns anchors ants apples apricots arrows axes badgers bagels bagpipes balloons ",
    "bananas barns barrels baskets bats beads beans bears beavers bees beetles bells ",
    "belts berries bikes birds biscuits blankets boats bones books boots bottles bowls ",
    "boxes bricks brooms brushes buckets bugs buns buses buttons cabbages cakes camels ",
    "candles cannons canoes caps carrots carts castles cats caves cherries chickens chips ",
    "clams clocks clouds clowns coats coins combs cookies corks cows crabs crayons crows ",
    "cubes cups daisies desks dice dishes dogs dolls donkeys doors dragons drums ducks ",
    "eagles eggs elves engines ferns figs flags flies flutes forks foxes frogs gates ",
    "geese ghosts gloves goats grapes guitars hammers hats hens hills hippos hooks horns ",
    "horses hounds huts jars jeans jellies kettles keys kites kiwis knights knots ladders ",
    "lamps leaves lemons lions lizards llamas locks mangoes maps melons mice mittens ",
    "moles monkeys moons moths mugs mules nails needles nests noodles nuts oaks oars ",
    "onions oranges otters owls oysters pandas pans parrots peaches pears peas pebbles ",
    "pencils pens pianos pies pigs pillows pins pipes plants plates plums ponies poppies ",
    "pots pumpkins puppies rabbits radishes rafts rakes ravens ribbons rings robots ",
    "rockets rocks roses rulers sacks sails sandals saucers sausages saws scarves seals ",
    "seeds shells ships shoes shovels skunks sleds slippers snails snakes socks sofas ",
    "spades spiders spoons stamps stars stones stools storks swans tables tents tigers ",
    "toads toasters tomatoes tools towels towers toys trains trees trolls trucks trumpets ",
    "tubas tulips turnips turtles umbrellas vans vases violins wagons walnuts walruses ",
    "wands wasps whales wheels whistles wigs windows wolves worms yachts yaks zebras",
);

/// The words that may stand at `position` of a generated code (0 for the
/// first word after the number), in the list's order: for completing a word
/// as it is typed. Empty past the last word.
pub fn words(position: usize) -> impl Iterator<Item = &'static str> {
    let list = match position {
        0 | 1 => ADJECTIVES,
        2 => NOUNS,
        _ => "",
    };
    list.split(' ').filter(|w| !w.is_empty())
}

/// The `index`th word (0-255) of a space-separated list of 256.
fn word(list: &'static str, index: u32) -> &'static str {
    list.split(' ').nth(index as usize).unwrap_or("none")
}

/// A draw from the system's random number generator.
fn draw() -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    super::random(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

/// A new code for a direct server, such as `7-brave-quiet-otters`.
pub fn generate() -> io::Result<String> {
    const CODES: u32 = NUMBERS * WORD_CODES;
    // Rejection sampling: draws at or above the largest multiple of CODES
    // would make the low codes likelier.
    let limit = u32::MAX - u32::MAX % CODES;
    loop {
        let draw = draw()?;
        if draw < limit {
            let draw = draw % CODES;
            return Ok(format!("{}-{}", draw / WORD_CODES, words_of(draw % WORD_CODES)));
        }
    }
}

/// New words for a code whose number is a relay's room, such as
/// `brave-quiet-otters`: 24 bits, the low bits of one draw (2^32 is a
/// multiple of 2^24, so none is likelier).
pub fn generate_words() -> io::Result<String> {
    Ok(words_of(draw()? % WORD_CODES))
}

/// The words numbered `index` (below 2^24).
fn words_of(index: u32) -> String {
    let first = word(ADJECTIVES, (index >> 16) & 0xff);
    let second = word(ADJECTIVES, (index >> 8) & 0xff);
    let third = word(NOUNS, index & 0xff);
    format!("{first}-{second}-{third}")
}

/// A code as both sides use it: trimmed, lower-cased, and every run of
/// spaces or dashes read as one `-`, so `7 Purple  Sausages` is
/// `7-purple-sausages`. `None` when nothing is left.
pub fn normalise(code: &str) -> Option<String> {
    let mut out = String::with_capacity(code.len());
    for part in parts(code) {
        if !out.is_empty() {
            out.push('-');
        }
        out.extend(part.chars().flat_map(char::to_lowercase));
    }
    (!out.is_empty()).then_some(out)
}

/// The parts of a code as typed: what lies between spaces and dashes.
fn parts(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| c.is_whitespace() || c == '-').filter(|p| !p.is_empty())
}

/// Why a typed code cannot be one that smolchat made: most likely a typo,
/// which is better said before the code costs a guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typo {
    /// It does not start with a number of at most 7 digits.
    Number,
    /// It does not have three words after the number (it has this many).
    Words(usize),
    /// This word is not one of the words a code has at its place.
    Unknown(String),
}

impl fmt::Display for Typo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Typo::Number => f.write_str("a code starts with its number"),
            Typo::Words(n) => write!(f, "a code has {WORDS} words after its number, not {n}"),
            Typo::Unknown(word) => write!(f, "'{word}' is not a word of smolchat's codes"),
        }
    }
}

/// Checks a typed code (normalised or not) against the shape and the word
/// lists of a generated one, and says what does not fit: the number, the
/// count of words, or the first word that is not on its list. A code from
/// `SMOLCHAT_CODE` is not checked: a server may use any text.
pub fn check(code: &str) -> Result<(), Typo> {
    let normal = normalise(code).unwrap_or_default();
    let mut parts = normal.split('-');
    let number = parts.next().unwrap_or_default();
    if !(1..=7).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Typo::Number);
    }
    let words: Vec<&str> = parts.collect();
    if words.len() != WORDS {
        return Err(Typo::Words(words.len()));
    }
    for (position, typed) in words.into_iter().enumerate() {
        if !self::words(position).any(|w| w == typed) {
            return Err(Typo::Unknown(typed.to_string()));
        }
    }
    Ok(())
}

/// The words the last word of `typed` (a code as typed so far) may become:
/// those of its place's list that start with it, lower-cased. Empty while
/// the number is typed, past the last word, or when no word fits.
pub fn completions(typed: &str) -> Vec<&'static str> {
    let Some((position, prefix)) = last_word(typed) else { return Vec::new() };
    words(position).filter(|w| w.starts_with(&prefix)).collect()
}

/// `typed` with its last word completed as far as the words it may become
/// agree (Tab): the whole word, and a `-` when another word follows, when
/// only one fits. `None` when there is nothing to add.
pub fn complete(typed: &str) -> Option<String> {
    let (position, prefix) = last_word(typed)?;
    let fits = completions(typed);
    let first = *fits.first()?;
    let common = fits.iter().fold(first.len(), |n, w| {
        first.bytes().zip(w.bytes()).take(n).take_while(|(a, b)| a == b).count()
    });
    let mut out = typed.to_string();
    out.push_str(&first[prefix.len()..common]);
    if fits.len() == 1 && position + 1 < WORDS {
        out.push('-');
    }
    (out.len() > typed.len()).then_some(out)
}

/// The place (0 for the first word after the number) and the lower-cased
/// text of the word being typed at the end of `typed`; `None` while the
/// number is typed.
fn last_word(typed: &str) -> Option<(usize, String)> {
    let ends_between = typed.ends_with(|c: char| c.is_whitespace() || c == '-');
    let mut parts: Vec<&str> = parts(typed).collect();
    let last = if ends_between { "" } else { parts.pop()? };
    // Before the last: the number, then the words already typed.
    let position = parts.len().checked_sub(1)?;
    // A char at a time, as `normalise` does: str::to_lowercase differs only
    // at a word-final sigma, which no word of the lists has, and weighs 5 KB.
    Some((position, last.chars().flat_map(char::to_lowercase).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_hold_256_distinct_words_none_the_start_of_another() {
        for list in [ADJECTIVES, NOUNS] {
            let words: Vec<&str> = list.split(' ').collect();
            assert_eq!(words.len(), 256);
            let mut sorted = words.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 256);
            assert!(words
                .iter()
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())));
            for w in &words {
                assert_eq!(words.iter().filter(|other| other.starts_with(w)).count(), 1, "{w}");
            }
        }
        assert_eq!(words(0).count(), 256);
        assert_eq!(words(2).count(), 256);
        assert_eq!(words(3).count(), 0);
    }

    #[test]
    fn codes_read_as_a_number_and_three_words() {
        assert_eq!(words_of(0), "able-able-acorns");
        assert_eq!(words_of(WORD_CODES - 1), "zany-zany-zebras");
        assert_eq!(words_of(0x01_02_03), "airy-amber-apples");
        let code = generate().unwrap();
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 4, "{code}");
        assert!(parts[0].parse::<u32>().unwrap() < NUMBERS);
        assert_eq!(normalise(&code).as_deref(), Some(code.as_str()));
        assert_eq!(check(&code), Ok(()));
        let words = generate_words().unwrap();
        assert_eq!(words.split('-').count(), WORDS, "{words}");
        assert_eq!(check(&format!("4711-{words}")), Ok(()));
    }

    #[test]
    fn codes_are_normalised() {
        assert_eq!(normalise("  7 Purple  Sausages\n").as_deref(), Some("7-purple-sausages"));
        assert_eq!(normalise("7 - purple--sausages").as_deref(), Some("7-purple-sausages"));
        assert_eq!(normalise("7-purple-sausages").as_deref(), Some("7-purple-sausages"));
        assert_eq!(normalise(" \t - "), None);
        assert_eq!(normalise(""), None);
    }

    #[test]
    fn a_typed_code_is_checked_word_by_word() {
        assert_eq!(check("7-brave-quiet-otters"), Ok(()));
        assert_eq!(check(" 4711 Brave quiet  OTTERS "), Ok(()));
        assert_eq!(check("brave-quiet-otters"), Err(Typo::Number));
        assert_eq!(check("12345678-brave-quiet-otters"), Err(Typo::Number));
        assert_eq!(check("7x-brave-quiet-otters"), Err(Typo::Number));
        assert_eq!(check("7-brave-otters"), Err(Typo::Words(2)));
        assert_eq!(check("7-brave-quiet-otters-too"), Err(Typo::Words(4)));
        assert_eq!(check("7-brave-quite-otters"), Err(Typo::Unknown("quite".into())));
        // Each place has its own list: a noun is no adjective.
        assert_eq!(check("7-otters-quiet-brave"), Err(Typo::Unknown("otters".into())));
        assert_eq!(check("7-brave-quiet-ottrs"), Err(Typo::Unknown("ottrs".into())));
        assert_eq!(
            Typo::Unknown("ottrs".into()).to_string(),
            "'ottrs' is not a word of smolchat's codes"
        );
        assert_eq!(Typo::Words(2).to_string(), "a code has 3 words after its number, not 2");
        assert_eq!(Typo::Number.to_string(), "a code starts with its number");
    }

    #[test]
    fn tab_completes_a_word_as_far_as_it_is_certain() {
        // One word fits: all of it, and the dash before the next.
        assert_eq!(complete("7-bra").as_deref(), Some("7-brave-"));
        assert_eq!(complete("7 brave quie").as_deref(), Some("7 brave quiet-"));
        assert_eq!(completions("7 brave qui"), ["quick", "quiet"]);
        // The last word ends the code: no dash after it.
        assert_eq!(complete("7-brave-quiet-ott").as_deref(), Some("7-brave-quiet-otters"));
        // Several fit: as far as they agree (bright, brisk, broad, brown...).
        assert_eq!(completions("7-br"), ["brave", "brief", "bright", "brisk", "broad", "brown"]);
        assert_eq!(complete("7-br"), None);
        assert_eq!(completions("7-bri"), ["brief", "bright", "brisk"]);
        assert_eq!(complete("7-bri"), None);
        assert_eq!(complete("7-brave-quiet-tow").as_deref(), Some("7-brave-quiet-towe"));
        // Upper case is read as lower case.
        assert_eq!(complete("7-BRA").as_deref(), Some("7-BRAve-"));
        // Nothing to do: the number, no fit, past the last word, a whole word.
        assert_eq!(complete("7"), None);
        assert_eq!(complete(""), None);
        assert_eq!(complete("7-zzz"), None);
        assert_eq!(complete("7-a-b-c-d"), None);
        assert_eq!(complete("7-brave-quiet-otters"), None);
        // After a separator, every word of the next place fits.
        assert_eq!(completions("7-").len(), 256);
        assert_eq!(completions("7-brave-quiet ").len(), 256);
        assert!(completions("7-brave-quiet ").contains(&"otters"));
    }
}
