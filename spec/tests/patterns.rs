//! The patterns the API's document gives names are the checks the platform runs, exactly: every
//! string over an alphabet of the characters that matter, up to a length, is accepted by both
//! or by neither.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use faas_spec::names::{
    EMAIL_PATTERN, ENV_NAME_PATTERN, SERVICE_NAME_PATTERN, check_email, check_env_name,
    check_service_name,
};

fn every_string(alphabet: &[char], max_len: usize, mut f: impl FnMut(&str)) {
    let mut current: Vec<usize> = Vec::new();
    loop {
        let s: String = current.iter().map(|&i| alphabet[i]).collect();
        f(&s);
        // The next string in length-then-lexicographic order.
        let mut i = current.len();
        loop {
            if i == 0 {
                if current.len() == max_len {
                    return;
                }
                current = vec![0; current.len() + 1];
                break;
            }
            i -= 1;
            if current[i] + 1 < alphabet.len() {
                current[i] += 1;
                for c in current.iter_mut().skip(i + 1) {
                    *c = 0;
                }
                break;
            }
        }
    }
}

fn agree(pattern: &str, check: impl Fn(&str) -> bool, alphabet: &[char], max_len: usize) {
    let re = regex_lite::Regex::new(pattern).unwrap();
    let mut seen = 0;
    every_string(alphabet, max_len, |s| {
        seen += 1;
        assert_eq!(
            re.is_match(s),
            check(s),
            "`{s:?}`: the pattern {pattern} and the check disagree"
        );
    });
    assert!(seen > 1000);
}

#[test]
fn service_and_environment_names() {
    let alphabet = ['a', 'z', '0', '-', 'A', '_', '.'];
    agree(
        SERVICE_NAME_PATTERN,
        |s| check_service_name(s).is_ok(),
        &alphabet,
        5,
    );
    agree(
        ENV_NAME_PATTERN,
        |s| check_env_name(s).is_ok(),
        &alphabet,
        5,
    );
    let long = |n: usize| "a".repeat(n);
    let re = regex_lite::Regex::new(SERVICE_NAME_PATTERN).unwrap();
    for n in [39, 40, 41] {
        assert_eq!(re.is_match(&long(n)), check_service_name(&long(n)).is_ok());
    }
    let re = regex_lite::Regex::new(ENV_NAME_PATTERN).unwrap();
    for n in [19, 20, 21] {
        assert_eq!(re.is_match(&long(n)), check_env_name(&long(n)).is_ok());
    }
}

#[test]
fn email_addresses() {
    agree(
        EMAIL_PATTERN,
        |s| check_email(s).is_ok(),
        &['a', '.', '@', '-', ' ', 'é', '\t', '\u{85}'],
        6,
    );
    assert!(check_email("team+billing@example.co.uk").is_ok());
}
