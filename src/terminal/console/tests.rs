//! The console's looks, decided from the facts.

use super::*;

#[test]
fn looks_follow_the_terminals_and_colour_rules() {
    let all = ConsoleStyle::from_facts([true; 3], false, false);
    let edit = cfg!(unix);
    assert_eq!(
        all,
        ConsoleStyle { prompt: true, label: true, colour: true, edit, status_colour: true }
    );
    // NO_COLOR takes the colour, not the editing; TERM=dumb both.
    let no_color = ConsoleStyle::from_facts([true; 3], true, false);
    assert!(!no_color.colour && !no_color.status_colour && no_color.edit == edit);
    let dumb = ConsoleStyle::from_facts([true; 3], false, true);
    assert!(!dumb.colour && !dumb.status_colour && !dumb.edit);
    // Editing needs the keyboard and stderr at a terminal.
    assert!(!ConsoleStyle::from_facts([true, true, false], false, false).edit);
    assert!(!ConsoleStyle::from_facts([false, true, true], false, false).edit);
    let piped = ConsoleStyle::from_facts([false; 3], false, false);
    assert_eq!(
        piped,
        ConsoleStyle {
            prompt: false,
            label: false,
            colour: false,
            edit: false,
            status_colour: false
        }
    );
}
