//! The one-time code: made from a number and two words a person can read
//! out, and normalised the same way on both sides before use.
//!
//! A generated code is `N-ADJECTIVE-NOUNS` with N from 0 to 99 and each word
//! from a list of 256: 100 × 256 × 256 = 6,553,600 codes, about 22.6 bits.
//! That is enough because SPAKE2 gives an attacker one guess per connection,
//! and the server replaces its code after three wrong ones.

use std::io;

/// How many values the number part takes (0 to 99).
const NUMBERS: u32 = 100;

/// The first word: 256 short, common English adjectives.
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

/// The second word: 256 short, common English plural nouns.
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

/// The `index`th word (0-255) of a space-separated list of 256.
fn word(list: &'static str, index: u32) -> &'static str {
    list.split(' ').nth(index as usize).unwrap_or("none")
}

/// A new random code such as `7-purple-sausages`, from the system's
/// random number generator.
pub fn generate() -> io::Result<String> {
    const CODES: u32 = NUMBERS * 256 * 256;
    // Rejection sampling: draws at or above the largest multiple of CODES
    // would make the low codes likelier.
    let limit = u32::MAX - u32::MAX % CODES;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::getrandom(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        let draw = u32::from_le_bytes(bytes);
        if draw < limit {
            return Ok(from_index(draw % CODES));
        }
    }
}

/// The code numbered `index` (below 6,553,600).
fn from_index(index: u32) -> String {
    let number = index / (256 * 256);
    let first = word(ADJECTIVES, (index >> 8) & 0xff);
    let second = word(NOUNS, index & 0xff);
    format!("{number}-{first}-{second}")
}

/// A code as both sides use it: trimmed, lower-cased, and every run of
/// spaces or dashes read as one `-`, so `7 Purple  Sausages` is
/// `7-purple-sausages`. `None` when nothing is left.
pub fn normalise(code: &str) -> Option<String> {
    let mut out = String::with_capacity(code.len());
    for part in code.split(|c: char| c.is_whitespace() || c == '-').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.extend(part.chars().flat_map(char::to_lowercase));
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_hold_256_distinct_words_each() {
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
        }
    }

    #[test]
    fn codes_read_as_a_number_and_two_words() {
        assert_eq!(from_index(0), "0-able-acorns");
        assert_eq!(from_index(NUMBERS * 65536 - 1), "99-zany-zebras");
        let code = generate().unwrap();
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 3, "{code}");
        assert!(parts[0].parse::<u32>().unwrap() < NUMBERS);
        assert_eq!(normalise(&code).as_deref(), Some(code.as_str()));
    }

    #[test]
    fn codes_are_normalised() {
        assert_eq!(normalise("  7 Purple  Sausages\n").as_deref(), Some("7-purple-sausages"));
        assert_eq!(normalise("7 - purple--sausages").as_deref(), Some("7-purple-sausages"));
        assert_eq!(normalise("7-purple-sausages").as_deref(), Some("7-purple-sausages"));
        assert_eq!(normalise(" \t - "), None);
        assert_eq!(normalise(""), None);
    }
}
