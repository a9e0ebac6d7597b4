//! Planning: short names for new sites, templates, and waves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use a2a_core::{Instance, InstanceKind, SchoolCode};
use serde::Serialize;

use crate::columns::{Profile, Warning};
use crate::read::{Field, Table};
use crate::validate::{RowError, School, Template, check_dns};

/// The default wave size.
pub const DEFAULT_WAVE_SIZE: u32 = 50;

/// How to plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The kind of rows that do not say (a directory-shaped list says for none).
    pub kind: InstanceKind,
    /// Schools per wave, at least 1.
    pub wave_size: u32,
    /// The size limit of the file, in bytes.
    pub max_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kind: InstanceKind::Provision,
            wave_size: DEFAULT_WAVE_SIZE,
            max_bytes: crate::read::DEFAULT_MAX_BYTES,
        }
    }
}

/// Which of the two known shapes the list has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A2A's own plan file (it has a `kind` column).
    Plan,
    /// A department export, the school directory or the school map (no `kind` column;
    /// `--kind` decides).
    Directory,
}

/// One school in the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// The row it came from.
    pub school: School,
    /// Its wave.
    pub wave: u32,
    /// The site's short name.
    pub dns: String,
    /// The template, for a provision.
    pub template: Option<Template>,
}

/// A short name made from a school's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Slug {
    /// The school.
    pub school_code: String,
    /// Its name.
    pub name: String,
    /// The short name made.
    pub dns: String,
}

/// The plan of one school list: what would be registered, and every row that would not.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The file, as named by the caller.
    pub file: String,
    /// Its shape.
    pub shape: Shape,
    /// The encoding it was read in.
    pub encoding: &'static str,
    /// Its delimiter.
    pub delimiter: char,
    /// Data rows read (blank lines not counted).
    pub rows: usize,
    /// The accepted schools, in plan order: by wave, and within a wave in the order they go.
    pub schools: Vec<Planned>,
    /// Every error, in line order.
    pub errors: Vec<RowError>,
    /// The short names made, by code.
    pub slugs: Vec<Slug>,
    /// What the columns hold, for [`Plan::warnings`].
    pub profile: Profile,
}

/// One wave of the plan, as `plan --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WaveJson {
    /// The wave number.
    pub wave: u32,
    /// Its schools, in order.
    pub schools: Vec<String>,
}

/// One error, as `plan --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorJson {
    /// The file line.
    pub line: u64,
    /// The school code as written.
    pub school_code: String,
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// `plan --json`: `{"warnings", "accepted", "rejected", "waves", "errors"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanJson {
    /// What the reader must know first (see [`Plan::warnings`]).
    pub warnings: Vec<Warning>,
    /// Schools accepted.
    pub accepted: usize,
    /// Rows rejected.
    pub rejected: usize,
    /// The waves, in order.
    pub waves: Vec<WaveJson>,
    /// The errors, in line order.
    pub errors: Vec<ErrorJson>,
}

impl Plan {
    /// Rows rejected: distinct lines with at least one error.
    pub fn rejected(&self) -> usize {
        let lines: BTreeSet<u64> = self.errors.iter().map(|e| e.line).collect();
        lines.len()
    }

    /// The waves, in order, each with its schools in order.
    pub fn waves(&self) -> Vec<WaveJson> {
        let mut out: Vec<WaveJson> = Vec::new();
        for p in &self.schools {
            match out.last_mut() {
                Some(w) if w.wave == p.wave => w.schools.push(p.school.code.to_string()),
                _ => out.push(WaveJson {
                    wave: p.wave,
                    schools: vec![p.school.code.to_string()],
                }),
            }
        }
        out
    }

    /// What the reader must know before anything else: each field on which more than
    /// half of the rows fail, with the column read for it and the columns that could have
    /// been, then each column set aside because its values do not fit its name.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut lines: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        for e in &self.errors {
            lines.entry(&e.field).or_default().insert(e.line);
        }
        let failing = lines
            .into_iter()
            .map(|(f, l)| (f.to_owned(), l.len()))
            .collect();
        self.profile.warnings(self.rows, &failing)
    }

    /// The plan as `plan --json` prints it.
    pub fn to_json(&self) -> PlanJson {
        PlanJson {
            warnings: self.warnings(),
            accepted: self.schools.len(),
            rejected: self.rejected(),
            waves: self.waves(),
            errors: self
                .errors
                .iter()
                .map(|e| ErrorJson {
                    line: e.line,
                    school_code: e.school_code.clone(),
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
        }
    }
}

impl Plan {
    /// Keeps short names unique across the store, given every instance in it: a made
    /// name that another school already has moves on to the next free suffix; a given one
    /// that another school has rejects its row. A school keeps its own name.
    pub fn avoid_taken(&mut self, existing: &HashMap<SchoolCode, Instance>) {
        let owner: HashMap<&str, &SchoolCode> = existing
            .values()
            .filter_map(|i| i.target.dns.as_deref().map(|d| (d, &i.code)))
            .collect();
        let mut taken: BTreeSet<String> = owner.keys().map(|d| d.to_string()).collect();
        taken.extend(self.schools.iter().map(|p| p.dns.clone()));
        let mut next = HashMap::new();
        let mut order: Vec<usize> = (0..self.schools.len()).collect();
        order.sort_by(|a, b| {
            self.schools[*a]
                .school
                .code
                .cmp(&self.schools[*b].school.code)
        });
        let mut rejected = BTreeSet::new();
        for i in order {
            let p = &mut self.schools[i];
            let Some(other) = owner.get(p.dns.as_str()).filter(|c| ***c != p.school.code) else {
                continue;
            };
            if p.school.dns.is_some() {
                self.errors.push(RowError {
                    line: p.school.line,
                    school_code: p.school.code.to_string(),
                    field: Field::Dns.as_str().into(),
                    value: p.dns.clone(),
                    message: format!(
                        "the short name {:?} is already school {other}'s; give another",
                        p.dns
                    ),
                });
                rejected.insert(i);
                continue;
            }
            let Some(dns) = unique(&slug(&p.school.name, 30), &taken, &mut next) else {
                continue;
            };
            taken.insert(dns.clone());
            if let Some(s) = self
                .slugs
                .iter_mut()
                .find(|s| s.school_code == p.school.code.as_str())
            {
                s.dns = dns.clone();
            }
            p.dns = dns;
        }
        let mut i = 0;
        self.schools.retain(|_| {
            i += 1;
            !rejected.contains(&(i - 1))
        });
        self.errors.sort_by_key(|e| e.line);
    }
}

/// A short name from a school name: lower case, accents off, every other run of
/// characters one `-`, at most `max` long, cut at a word end where one is near. `Escola
/// Bertí` gives `escola-berti`.
pub fn slug(name: &str, max: usize) -> String {
    let mut full = String::new();
    let mut dash = false;
    for c in name.chars().flat_map(crate::read::fold_char) {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            if dash && !full.is_empty() {
                full.push('-');
            }
            dash = false;
            full.push(c);
        } else if c != '·' {
            // The Catalan `l·l` stays `ll`; anything else separates words.
            dash = true;
        }
    }
    if full.len() <= max {
        return full;
    }
    // Only ASCII was pushed, so any byte index is a character boundary.
    let mut cut = &full[..max];
    if full.as_bytes()[max] != b'-'
        && let Some(i) = cut.rfind('-').filter(|&i| i >= max / 2)
    {
        cut = &cut[..i];
    }
    cut.trim_end_matches('-').to_owned()
}

/// Plans validated schools: templates, short names, waves.
///
/// Order: primary schools first (the EIX rule), then higher priority, then province,
/// then code; waves of `wave_size` in that order. A row with its own wave keeps it; the
/// others fill waves numbered after the highest one given. Short names are made in code
/// order, after every given one is taken, so the same list always gives the same plan.
pub fn plan_schools(
    table: &Table,
    file: &str,
    schools: Vec<School>,
    mut errors: Vec<RowError>,
    opts: &Options,
) -> Plan {
    let wave_size = opts.wave_size.max(1) as usize;
    let mut taken: BTreeSet<String> = schools.iter().filter_map(|s| s.dns.clone()).collect();
    let mut by_code: Vec<&School> = schools.iter().collect();
    by_code.sort_by(|a, b| a.code.cmp(&b.code));
    let mut slugs = Vec::new();
    let mut made: BTreeMap<SchoolCode, String> = Default::default();
    let mut failed: BTreeSet<u64> = BTreeSet::new();
    let mut next_suffix = HashMap::new();
    for s in by_code {
        if s.dns.is_some() {
            continue;
        }
        let base = slug(&s.name, 30);
        let Some(dns) = unique(&base, &taken, &mut next_suffix) else {
            failed.insert(s.line);
            errors.push(RowError {
                line: s.line,
                school_code: s.code.to_string(),
                field: Field::Dns.as_str().into(),
                value: s.name.clone(),
                message: "no short name can be made from this name (it has no letter or \
                          digit); give one in the dns column"
                    .into(),
            });
            continue;
        };
        taken.insert(dns.clone());
        slugs.push(Slug {
            school_code: s.code.to_string(),
            name: s.name.clone(),
            dns: dns.clone(),
        });
        made.insert(s.code.clone(), dns);
    }
    errors.sort_by_key(|e| e.line);

    let mut planned: Vec<Planned> = schools
        .into_iter()
        .filter(|s| !failed.contains(&s.line))
        .map(|s| {
            let dns = s.dns.clone().or_else(|| made.get(&s.code).cloned());
            let template = (s.kind == InstanceKind::Provision).then(|| {
                s.template.unwrap_or(if s.primary {
                    Template::Primary
                } else {
                    Template::Secondary
                })
            });
            Planned {
                dns: dns.expect("every school has a given or a made short name"),
                template,
                wave: s.wave.unwrap_or(0),
                school: s,
            }
        })
        .collect();
    let order = |p: &Planned| {
        (
            !p.school.primary,
            std::cmp::Reverse(p.school.priority),
            p.school.code.as_str()[..2].to_owned(),
            p.school.code.clone(),
        )
    };
    planned.sort_by_cached_key(order);
    let first_free = planned.iter().map(|p| p.wave).max().unwrap_or(0) + 1;
    for (n, p) in planned
        .iter_mut()
        .filter(|p| p.school.wave.is_none())
        .enumerate()
    {
        p.wave = first_free + (n / wave_size) as u32;
    }
    // Stable: within a wave the order above stands.
    planned.sort_by_key(|p| p.wave);

    let shape = if table.columns.has(Field::Kind) {
        Shape::Plan
    } else {
        Shape::Directory
    };
    Plan {
        file: file.to_owned(),
        shape,
        encoding: table.encoding,
        delimiter: table.delimiter,
        rows: table.records.len(),
        schools: planned,
        errors,
        slugs,
        profile: table.profile.clone(),
    }
}

/// `base`, or `base-2`, `base-3`… cut to fit 30 characters, whichever is free first.
/// `next` remembers the last suffix tried per base, so many schools of one base name stay
/// linear.
fn unique(base: &str, taken: &BTreeSet<String>, next: &mut HashMap<String, u32>) -> Option<String> {
    if base.is_empty() {
        return None;
    }
    if !taken.contains(base) {
        return Some(base.to_owned());
    }
    let from = next.get(base).copied().unwrap_or(2);
    let (n, candidate) = (from..).find_map(|n| {
        let suffix = format!("-{n}");
        let mut head = base[..base.len().min(30 - suffix.len())].to_owned();
        while head.ends_with('-') {
            head.pop();
        }
        let candidate = format!("{head}{suffix}");
        debug_assert!(check_dns(&candidate).is_ok());
        (!taken.contains(&candidate)).then_some((n, candidate))
    })?;
    next.insert(base.to_owned(), n + 1);
    Some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan_bytes;

    fn plan(text: &str, opts: Options) -> Plan {
        plan_bytes("t.csv", text.as_bytes(), &opts).unwrap()
    }

    #[test]
    fn slugs_fold_accents_and_separate_words() {
        assert_eq!(slug("Escola Bertí", 30), "escola-berti");
        assert_eq!(
            slug("  Institut Pau Casals — Sant Martí! ", 30),
            "institut-pau-casals-sant-marti"
        );
        assert_eq!(
            slug("Escola Pompeu Fabra i Poch de l'Hospitalet", 30),
            "escola-pompeu-fabra-i-poch-de"
        );
        assert_eq!(slug("Col·legi Ñandú", 30), "collegi-nandu");
        assert_eq!(slug("—", 30), "");
        assert_eq!(
            slug("Institut Narcís Monturiol i Estarriol", 30),
            "institut-narcis-monturiol-i",
            "cut at a word end"
        );
        for s in [
            "Escola Bertí",
            "Institut de la Ribera d'Ebre Amposta Tortosa",
        ] {
            assert!(check_dns(&slug(s, 30)).is_ok());
        }
    }

    #[test]
    fn slugs_are_unique_and_listed() {
        let p = plan(
            "school_code,name,dns\n08000034,Escola Bertí,\n08000013,Escola Bertí,\n\
             08000021,Escola Berti,escola-berti-2\n",
            Options::default(),
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let made: Vec<(&str, &str)> = p
            .slugs
            .iter()
            .map(|s| (s.school_code.as_str(), s.dns.as_str()))
            .collect();
        assert_eq!(
            made,
            [("08000013", "escola-berti"), ("08000034", "escola-berti-3")],
            "in code order, after the given names"
        );
        let long = "x".repeat(30);
        let taken: BTreeSet<String> = [long.clone()].into();
        assert_eq!(
            unique(&long, &taken, &mut HashMap::new()).unwrap(),
            format!("{}-2", "x".repeat(28))
        );
    }

    #[test]
    fn primary_first_then_priority_province_code_in_waves() {
        let p = plan(
            "school_code,name,estudis,priority\n\
             43000001,T,ESO,\n08000002,B,ESO,\n17000003,G,EPRI,\n08000004,P,ESO,9\n\
             25000005,L,EINF2C|EPRI,\n",
            Options {
                wave_size: 2,
                ..Options::default()
            },
        );
        let waves = p.waves();
        assert_eq!(
            waves,
            [
                WaveJson {
                    wave: 1,
                    schools: vec!["17000003".into(), "25000005".into()]
                },
                WaveJson {
                    wave: 2,
                    schools: vec!["08000004".into(), "08000002".into()]
                },
                WaveJson {
                    wave: 3,
                    schools: vec!["43000001".into()]
                },
            ]
        );
        let t: Vec<_> = p.schools.iter().map(|s| s.template.unwrap()).collect();
        assert_eq!(t[0], Template::Primary);
        assert_eq!(t[2], Template::Secondary);
    }

    #[test]
    fn given_waves_are_kept_and_the_rest_follow() {
        let p = plan(
            "school_code,name,kind,wave\n08000001,A,provision,3\n08000002,B,provision,\n\
             08000003,C,provision,1\n",
            Options::default(),
        );
        let waves: Vec<(u32, usize)> = p
            .waves()
            .iter()
            .map(|w| (w.wave, w.schools.len()))
            .collect();
        assert_eq!(waves, [(1, 1), (3, 1), (4, 1)]);
        assert_eq!(p.shape, Shape::Plan);
    }

    #[test]
    fn the_same_list_in_another_order_gives_the_same_plan() {
        let rows = [
            "08000013,Escola Bertí,EPRI",
            "08000021,Escola Bertí,",
            "17000001,Institut Nou,",
            "25000002,Escola del Mar,EPRI",
        ];
        let a = plan(
            &format!("codi_centre,nom,EPRI\n{}\n", rows.join("\n")),
            Options::default(),
        );
        let mut rev = rows;
        rev.reverse();
        let b = plan(
            &format!("codi_centre,nom,EPRI\n{}\n", rev.join("\n")),
            Options::default(),
        );
        assert_eq!(a.waves(), b.waves());
        assert_eq!(a.slugs, b.slugs);
        assert_eq!(a.shape, Shape::Directory);
    }

    #[test]
    fn a_name_with_no_letter_cannot_make_a_short_name() {
        let p = plan(
            "school_code,name\n08000013,—\n08000021,B\n",
            Options::default(),
        );
        assert_eq!(p.schools.len(), 1);
        assert_eq!((p.errors[0].line, p.errors[0].field.as_str()), (2, "dns"));
        assert_eq!(p.to_json().rejected, 1);
    }
}
