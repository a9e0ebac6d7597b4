//! A Moodle-like site database for tests and benchmarks: tables and columns modelled on
//! Moodle's core `lib/db/install.xml`, with realistic data — Catalan names, HTML with
//! absolute URLs to the old site, NULLs beside empty strings, emoji, blobs, 64-bit
//! integers and decimals. Deterministic for a given seed.

use a2a_core::Locator;
use serde::Serialize;

use crate::DbError;
use crate::engine::Db;
use crate::schema::{ColType, Column, Index, Row, Table, Value};

/// What to generate.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    /// Table prefix (`mdl_`; Àgora uses `m2`).
    pub prefix: String,
    /// Size factor: rows per table grow linearly with it.
    pub scale: u64,
    /// Seed of the pseudo-random data.
    pub seed: u64,
    /// Also three non-Moodle tables that cover what Moodle does not use: booleans, dates,
    /// timestamps, floats of both widths, a composite text key, and a table with no key.
    pub extras: bool,
    /// The old site's address, as absolute URLs in the content use it.
    pub wwwroot: String,
    /// The small fixture alone, or shaped like a whole Moodle site.
    pub shape: Shape,
}

/// How many tables the fixture has, and how its bytes spread over them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    /// The core tables alone (15, or 18 with the extras); every table grows with the scale.
    #[default]
    Small,
    /// About 500 tables, as a Moodle 4.5 site has: the core ones, three more big ones
    /// (`question_attempt_steps`, `question_attempt_step_data`, `grade_grades_history`) and
    /// a long tail of plugin tables with Moodle's column types, nullable columns, unique
    /// and compound indexes and sequences, most under 10 rows and none growing with the
    /// scale, so that a few tables hold almost all the bytes.
    Moodle,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self {
            prefix: crate::DEFAULT_PREFIX.into(),
            scale: 1,
            seed: 1,
            extras: false,
            wwwroot: "https://agora.xtec.cat/centres/ins-exemple".into(),
            shape: Shape::Small,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Serialize)]
pub struct FixtureReport {
    /// Tables created.
    pub tables: usize,
    /// Rows written.
    pub rows: u64,
}

/// A small deterministic generator (SplitMix64): no dependency, same data everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Jordi",
    "Núria",
    "Mercè",
    "Pere",
    "Montserrat",
    "Àlex",
    "Laia",
    "Joan",
    "Queralt",
    "Roger",
    "Maria Àngels",
    "Oriol",
    "Aina",
    "Martí",
    "Iu",
];
const LAST: &[&str] = &[
    "Puig",
    "Ferrer",
    "Vilaró",
    "Soler",
    "Casals",
    "Güell",
    "Roig",
    "Serra",
    "Domènech",
    "Bofill",
    "Sunyer",
    "Vidal",
    "Camps",
    "L'Hospitalet",
    "Pujol",
];
const WORDS: &[&str] = &[
    "matemàtiques",
    "llengua",
    "ciències",
    "història",
    "educació física",
    "música",
    "tecnologia",
    "anglès",
    "filosofia",
    "química",
    "exercici",
    "lliçó",
    "avaluació",
    "fòrum",
    "tasca",
    "qüestionari",
    "l'escola",
    "pàgina",
    "cursos",
    "plàstica",
];
const EMOJI: &[&str] = &["🎓", "📚", "✏️", "😀", "👩‍🏫", "🇪🇸"];

fn col(name: &str, ty: ColType, nullable: bool, default: Option<&str>) -> Column {
    Column {
        name: name.into(),
        ty,
        nullable,
        default: default.map(str::to_owned),
        auto_increment: false,
    }
}

fn id() -> Column {
    Column {
        auto_increment: true,
        ..col("id", INT8, false, None)
    }
}

const INT8: ColType = ColType::Int { bytes: 8 };
const INT2: ColType = ColType::Int { bytes: 2 };
const INT1: ColType = ColType::Int { bytes: 1 };
const fn ch(len: u32) -> ColType {
    ColType::Char { len }
}
const fn num(precision: u32, scale: u32) -> ColType {
    ColType::Number { precision, scale }
}

fn ix(table: &str, cols: &[&str], unique: bool) -> Index {
    // Moodle's own naming: <table>_<cols>_ix / _uix, short enough for every engine.
    let short: Vec<String> = cols.iter().map(|c| c.chars().take(4).collect()).collect();
    Index {
        name: format!(
            "{}_{}_{}",
            table,
            short.join(""),
            if unique { "uix" } else { "ix" }
        ),
        columns: cols.iter().map(|c| (*c).to_owned()).collect(),
        unique,
    }
}

fn table(prefix: &str, name: &str, columns: Vec<Column>, idx: &[(&[&str], bool)]) -> Table {
    let full = format!("{prefix}{name}");
    let has_id = columns.iter().any(|c| c.name == "id");
    Table {
        indexes: idx.iter().map(|(c, u)| ix(&full, c, *u)).collect(),
        name: full,
        columns,
        primary_key: if has_id { vec!["id".into()] } else { vec![] },
        next_id: None,
    }
}

/// The fixture's tables, with `prefix`.
pub fn tables(prefix: &str, extras: bool) -> Vec<Table> {
    let n = |s: &str, ty| col(s, ty, false, Some("0"));
    let e = |s: &str, len| col(s, ch(len), false, Some(""));
    let t = |s: &str| col(s, ColType::Text, true, None);
    let mut out = vec![
        table(
            prefix,
            "config",
            vec![
                id(),
                e("name", 255),
                col("value", ColType::Text, false, None),
            ],
            &[(&["name"], true)],
        ),
        table(
            prefix,
            "config_plugins",
            vec![
                id(),
                col("plugin", ch(100), false, Some("core")),
                e("name", 100),
                col("value", ColType::Text, false, None),
            ],
            &[(&["plugin", "name"], true)],
        ),
        table(
            prefix,
            "course_categories",
            vec![
                id(),
                e("name", 255),
                e("idnumber", 100),
                t("description"),
                n("parent", INT8),
                n("sortorder", INT8),
                n("coursecount", INT8),
                col("visible", INT1, false, Some("1")),
                n("timemodified", INT8),
                n("depth", INT8),
                e("path", 255),
            ],
            &[(&["parent"], false)],
        ),
        table(
            prefix,
            "course",
            vec![
                id(),
                n("category", INT8),
                n("sortorder", INT8),
                e("fullname", 254),
                e("shortname", 255),
                col("idnumber", ch(100), false, Some("")),
                t("summary"),
                col("summaryformat", INT1, false, Some("0")),
                col("format", ch(21), false, Some("topics")),
                n("startdate", INT8),
                col("visible", INT1, false, Some("1")),
                n("timecreated", INT8),
                n("timemodified", INT8),
            ],
            &[(&["category"], false), (&["shortname"], false)],
        ),
        table(
            prefix,
            "context",
            vec![
                id(),
                n("contextlevel", INT8),
                n("instanceid", INT8),
                col("path", ch(255), true, None),
                n("depth", INT1),
                col("locked", INT1, false, Some("0")),
            ],
            &[(&["contextlevel", "instanceid"], true)],
        ),
        table(
            prefix,
            "user",
            vec![
                id(),
                col("auth", ch(20), false, Some("manual")),
                col("confirmed", INT1, false, Some("0")),
                col("deleted", INT1, false, Some("0")),
                n("mnethostid", INT8),
                e("username", 100),
                e("password", 255),
                e("idnumber", 255),
                e("firstname", 100),
                e("lastname", 100),
                e("email", 100),
                e("institution", 255),
                e("department", 255),
                e("city", 120),
                col("lang", ch(30), false, Some("ca")),
                t("description"),
                n("picture", INT8),
                n("lastaccess", INT8),
                n("timecreated", INT8),
            ],
            &[(&["mnethostid", "username"], true), (&["email"], false)],
        ),
        table(
            prefix,
            "role_assignments",
            vec![
                id(),
                n("roleid", INT8),
                n("contextid", INT8),
                n("userid", INT8),
                n("timemodified", INT8),
                n("modifierid", INT8),
                e("component", 100),
                n("itemid", INT8),
                n("sortorder", INT8),
            ],
            &[
                (&["roleid"], false),
                (&["contextid"], false),
                (&["userid"], false),
            ],
        ),
        table(
            prefix,
            "files",
            vec![
                id(),
                e("contenthash", 40),
                e("pathnamehash", 40),
                n("contextid", INT8),
                e("component", 100),
                e("filearea", 50),
                n("itemid", INT8),
                e("filepath", 255),
                e("filename", 255),
                col("userid", INT8, true, None),
                n("filesize", INT8),
                col("mimetype", ch(100), true, None),
                n("status", INT8),
                t("source"),
                col("author", ch(255), true, None),
                col("license", ch(255), true, None),
                n("timecreated", INT8),
                n("timemodified", INT8),
                n("sortorder", INT8),
            ],
            &[(&["pathnamehash"], true), (&["contenthash"], false)],
        ),
        table(
            prefix,
            "forum_posts",
            vec![
                id(),
                n("discussion", INT8),
                n("parent", INT8),
                n("userid", INT8),
                n("created", INT8),
                n("modified", INT8),
                n("mailed", INT1),
                e("subject", 255),
                col("message", ColType::Text, false, None),
                n("messageformat", INT1),
                n("messagetrust", INT1),
                e("attachment", 100),
                n("totalscore", INT2),
                n("mailnow", INT8),
                n("deleted", INT1),
                n("privatereplyto", INT8),
                col("wordcount", INT8, true, None),
                col("charcount", INT8, true, None),
            ],
            &[(&["discussion"], false), (&["userid"], false)],
        ),
        table(
            prefix,
            "assign_submission",
            vec![
                id(),
                n("assignment", INT8),
                n("userid", INT8),
                n("timecreated", INT8),
                n("timemodified", INT8),
                col("timestarted", INT8, true, None),
                col("status", ch(10), true, None),
                n("groupid", INT8),
                n("attemptnumber", INT8),
                n("latest", INT1),
            ],
            &[(&["assignment", "userid", "groupid", "attemptnumber"], true)],
        ),
        table(
            prefix,
            "grade_grades",
            vec![
                id(),
                n("itemid", INT8),
                n("userid", INT8),
                col("rawgrade", num(10, 5), true, None),
                col("rawgrademax", num(10, 5), false, Some("100")),
                col("rawgrademin", num(10, 5), false, Some("0")),
                col("finalgrade", num(10, 5), true, None),
                n("hidden", INT8),
                t("feedback"),
                col("aggregationweight", num(10, 5), true, None),
                col("timemodified", INT8, true, None),
            ],
            &[(&["itemid", "userid"], true)],
        ),
        table(
            prefix,
            "logstore_standard_log",
            vec![
                id(),
                e("eventname", 255),
                e("component", 100),
                e("action", 100),
                e("target", 100),
                col("crud", ch(1), false, Some("r")),
                n("edulevel", INT1),
                n("contextid", INT8),
                n("userid", INT8),
                col("courseid", INT8, true, None),
                t("other"),
                n("timecreated", INT8),
                n("origin", INT8),
                col("ip", ch(45), true, None),
            ],
            &[(&["timecreated"], false), (&["userid", "contextid"], false)],
        ),
        table(
            prefix,
            "sessions",
            vec![
                id(),
                n("state", INT8),
                e("sid", 128),
                n("userid", INT8),
                t("sessdata"),
                n("timecreated", INT8),
                n("timemodified", INT8),
                e("firstip", 45),
                e("lastip", 45),
            ],
            &[(&["sid"], true), (&["timemodified"], false)],
        ),
        table(
            prefix,
            "question",
            vec![
                id(),
                n("parent", INT8),
                e("name", 255),
                col("questiontext", ColType::Text, false, None),
                n("questiontextformat", INT1),
                col("generalfeedback", ColType::Text, false, None),
                col("defaultmark", num(12, 7), false, Some("1")),
                col("penalty", num(12, 7), false, Some("0.3333333")),
                e("qtype", 20),
                n("length", INT8),
                e("stamp", 255),
                n("timecreated", INT8),
                n("timemodified", INT8),
            ],
            &[(&["qtype"], false)],
        ),
        table(
            prefix,
            "course_modules",
            vec![
                id(),
                n("course", INT8),
                n("module", INT8),
                n("instance", INT8),
                n("section", INT8),
                col("idnumber", ch(100), true, None),
                n("added", INT8),
                n("score", INT2),
                n("indent", INT2),
                col("visible", INT1, false, Some("1")),
                col("deletioninprogress", INT1, false, Some("0")),
            ],
            &[(&["course"], false), (&["module"], false)],
        ),
    ];
    if extras {
        out.push(table(
            prefix,
            "a2a_types",
            vec![
                id(),
                col("big", INT8, true, None),
                col("flag", ColType::Bool, true, None),
                col("ratio", ColType::Float { double: true }, true, None),
                col("ratio4", ColType::Float { double: false }, true, None),
                col("price", num(20, 5), true, None),
                col("day", ColType::Date, true, None),
                col("moment", ColType::Timestamp, true, None),
                col("content", ColType::Binary, true, None),
                col("note", ColType::Text, true, None),
            ],
            &[],
        ));
        let mut pairs = table(
            prefix,
            "a2a_pairs",
            vec![
                col("lang", ch(30), false, None),
                col("n", INT8, false, None),
                col("label", ch(255), true, None),
            ],
            &[],
        );
        pairs.primary_key = vec!["lang".into(), "n".into()];
        out.push(pairs);
        out.push(table(
            prefix,
            "a2a_nokey",
            vec![
                col("who", ch(100), true, None),
                col("what", ColType::Text, true, None),
                col("bytes", ColType::Binary, true, None),
            ],
            &[],
        ));
    }
    out
}

/// The tables of `o`: the core ones, and with [`Shape::Moodle`] the big question and
/// grade-history tables and the long tail.
pub fn tables_of(o: &FixtureOptions) -> Vec<Table> {
    let mut out = tables(&o.prefix, o.extras);
    if o.shape == Shape::Moodle {
        out.extend(moodle_big(&o.prefix));
        out.extend(tail_names().iter().map(|name| tail_table(&o.prefix, name)));
    }
    out
}

/// Moodle's other big tables: the question engine's steps and their data, and the grade
/// history.
fn moodle_big(prefix: &str) -> Vec<Table> {
    let n = |s: &str, ty| col(s, ty, false, Some("0"));
    let e = |s: &str, len| col(s, ch(len), false, Some(""));
    vec![
        table(
            prefix,
            "question_attempt_steps",
            vec![
                id(),
                n("questionattemptid", INT8),
                n("sequencenumber", INT8),
                e("state", 13),
                col("fraction", num(12, 7), true, None),
                n("timecreated", INT8),
                col("userid", INT8, true, None),
            ],
            &[(&["questionattemptid", "sequencenumber"], false)],
        ),
        table(
            prefix,
            "question_attempt_step_data",
            vec![
                id(),
                n("attemptstepid", INT8),
                e("name", 32),
                col("value", ColType::Text, true, None),
            ],
            &[(&["attemptstepid", "name"], false)],
        ),
        table(
            prefix,
            "grade_grades_history",
            vec![
                id(),
                n("action", INT8),
                n("oldid", INT8),
                e("source", 255),
                col("timemodified", INT8, true, None),
                col("loggeduser", INT8, true, None),
                n("itemid", INT8),
                n("userid", INT8),
                col("rawgrade", num(10, 5), true, None),
                col("finalgrade", num(10, 5), true, None),
                col("feedback", ColType::Text, true, None),
                n("feedbackformat", INT8),
                col("information", ColType::Text, true, None),
            ],
            &[(&["itemid", "userid"], false), (&["timemodified"], false)],
        ),
    ]
}

/// Component prefixes of Moodle's plugin tables (activities, blocks, admin tools, core
/// subsystems), and the second parts of their table names.
const PLUGINS: &[&str] = &[
    "assign",
    "assignfeedback",
    "book",
    "chat",
    "choice",
    "data",
    "feedback",
    "folder",
    "glossary",
    "h5pactivity",
    "imscp",
    "lesson",
    "lti",
    "page",
    "quiz",
    "scorm",
    "survey",
    "url",
    "wiki",
    "workshop",
    "bigbluebuttonbn",
    "badge",
    "competency",
    "analytics",
    "message",
    "cohort",
    "enrol",
    "tool_dataprivacy",
    "tool_monitor",
    "tool_policy",
    "tool_usertours",
    "block_recentlyaccesseditems",
    "block_xp",
    "qtype_ddmarker",
    "qtype_multichoice",
    "local_agora",
    "theme_xtec2020",
    "report_coursesize",
    "mnet",
    "oauth2",
    "portfolio",
    "repository",
    "search_simpledb",
    "tag",
    "task",
    "ltiservice",
    "contentbank",
    "customfield",
];
const PARTS: &[&str] = &[
    "",
    "_attempts",
    "_grades",
    "_submissions",
    "_items",
    "_options",
    "_answers",
    "_log",
    "_fields",
    "_records",
    "_entries",
    "_categories",
    "_comments",
    "_overrides",
    "_settings",
];

/// The long tail's table names (without the prefix): about 480, none a core table's.
fn tail_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let core: Vec<String> = tables("", true)
            .into_iter()
            .chain(moodle_big(""))
            .map(|t| t.name)
            .collect();
        let mut out = Vec::new();
        for (pi, p) in PLUGINS.iter().enumerate() {
            // Plugins have from a few tables to all of them, as real ones do.
            let n = 6 + (fnv(p) as usize + pi) % (PARTS.len() - 5);
            for part in &PARTS[..n] {
                let name = format!("{p}{part}");
                if !core.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    })
}

/// One table of the long tail: an id, then Moodle's usual columns, picked by its name.
fn tail_table(prefix: &str, name: &str) -> Table {
    let pool: [(&str, ColType, bool, Option<&str>); 16] = [
        ("courseid", INT8, false, Some("0")),
        ("userid", INT8, false, Some("0")),
        ("instanceid", INT8, false, Some("0")),
        ("contextid", INT8, false, Some("0")),
        ("name", ch(255), false, Some("")),
        ("component", ch(100), false, Some("")),
        ("intro", ColType::Text, true, None),
        ("introformat", INT2, false, Some("0")),
        ("content", ColType::Text, true, None),
        ("sortorder", INT8, false, Some("0")),
        ("visible", INT1, false, Some("1")),
        ("grade", num(10, 5), true, None),
        ("rawdata", ColType::Binary, true, None),
        ("status", ch(20), false, Some("")),
        ("timecreated", INT8, false, Some("0")),
        ("timemodified", INT8, false, Some("0")),
    ];
    let h = fnv(name);
    let mut columns = vec![id()];
    for (k, (c, ty, nullable, default)) in pool.iter().enumerate() {
        // Each column by one bit of the name's hash: tables differ, and about half the
        // pool is in each.
        if (h >> k) & 1 == 1 || *c == "timemodified" {
            columns.push(col(c, *ty, *nullable, *default));
        }
    }
    let has = |c: &str| columns.iter().any(|x| x.name == c);
    let mut idx: Vec<(&[&str], bool)> = Vec::new();
    // instanceid holds the row number: unique, alone or first in a compound key.
    if has("instanceid") && has("userid") {
        idx.push((&["instanceid", "userid"], true));
    } else if has("instanceid") {
        idx.push((&["instanceid"], true));
    }
    if has("courseid") && has("userid") {
        idx.push((&["courseid", "userid"], false));
    }
    if has("contextid") && has("component") {
        idx.push((&["contextid", "component"], false));
    }
    idx.push((&["timemodified"], false));
    table(prefix, name, columns, &idx)
}

/// Rows of a long-tail table, whatever the scale: most under 10, some hundreds, a few
/// thousands, as on a real site.
fn tail_rows(name: &str) -> u64 {
    let h = fnv(name);
    match h % 20 {
        0..=13 => h % 10,
        14..=18 => 10 + (h >> 8) % 300,
        _ => 500 + (h >> 8) % 3000,
    }
}

/// Rows per table at scale 1 (about 1 MB in all); the log is the biggest, as on a
/// real site.
fn base_rows(name: &str) -> u64 {
    match name {
        n if n.ends_with("logstore_standard_log") => 1200,
        n if n.ends_with("question_attempt_step_data") => 900,
        n if n.ends_with("question_attempt_steps") => 600,
        n if n.ends_with("grade_grades_history") => 300,
        n if n.ends_with("forum_posts") || n.ends_with("files") => 360,
        n if n.ends_with("config") || n.ends_with("config_plugins") => 150,
        n if n.ends_with("course") || n.ends_with("course_categories") => 24,
        _ => 120,
    }
}

/// The id of row `i`: with gaps, as deleted rows leave them.
fn id_of(i: u64) -> i64 {
    (i + 1 + i / 7) as i64
}

/// The rows of one table. In `files`, the hashes and sizes are those of
/// [`file_content`], so a moodledata written from it is consistent with the table.
pub fn rows(t: &Table, o: &FixtureOptions) -> Vec<Row> {
    RowIter::new(t, o).collect()
}

/// The rows of one table, one at a time: a big scale never sits in memory whole.
pub struct RowIter<'a> {
    table: &'a Table,
    options: &'a FixtureOptions,
    rng: Rng,
    next: u64,
    count: u64,
    files: Option<[usize; 10]>,
}

impl<'a> RowIter<'a> {
    /// The rows of `table` at `options`' scale and seed.
    pub fn new(table: &'a Table, options: &'a FixtureOptions) -> Self {
        let pos = |n: &str| table.columns.iter().position(|c| c.name == n);
        let files = if table.name == format!("{}files", options.prefix) {
            let names = [
                "id",
                "contenthash",
                "pathnamehash",
                "contextid",
                "component",
                "filearea",
                "itemid",
                "filepath",
                "filename",
                "filesize",
            ];
            let found: Vec<usize> = names.iter().filter_map(|n| pos(n)).collect();
            <[usize; 10]>::try_from(found).ok()
        } else {
            None
        };
        Self {
            table,
            options,
            rng: Rng(options.seed ^ fnv(&table.name)),
            next: 0,
            count: match table.name.strip_prefix(options.prefix.as_str()) {
                Some(n)
                    if options.shape == Shape::Moodle && tail_names().iter().any(|t| t == n) =>
                {
                    tail_rows(n)
                }
                _ => base_rows(&table.name) * options.scale.max(1),
            },
            files,
        }
    }

    /// Rows in all.
    pub fn total(&self) -> u64 {
        self.count
    }
}

impl Iterator for RowIter<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.next >= self.count {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let o = self.options;
        let mut r = row(self.table, i, &mut self.rng, o);
        if let Some([id, ch, ph, cx, co, fa, it, fp, fnm, fs]) = self.files
            && let Value::Int(n) = r[id]
        {
            // Every fourth entry is a directory, as Moodle records them: ".", empty.
            let content = if i % 4 == 3 {
                r[fnm] = Value::Text(".".into());
                Vec::new()
            } else {
                file_content(o.seed, n)
            };
            r[ch] = Value::Text(sha1_hex(&content));
            r[fs] = Value::Int(content.len() as i64);
            let path = format!(
                "/{}/{}/{}/{}{}{}",
                r[cx],
                text_of(&r[co]),
                text_of(&r[fa]),
                r[it],
                text_of(&r[fp]),
                text_of(&r[fnm])
            );
            r[ph] = Value::Text(sha1_hex(path.as_bytes()));
        }
        Some(r)
    }
}

fn text_of(v: &Value) -> &str {
    match v {
        Value::Text(s) => s,
        _ => "",
    }
}

/// Lower-case hex SHA-1, as Moodle names `filedir` files.
pub fn sha1_hex(b: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(b))
}

/// The content of the file of `files` row `id`: a few KB, deterministic.
pub fn file_content(seed: u64, id: i64) -> Vec<u8> {
    let mut rng = Rng(seed ^ (id as u64).wrapping_mul(0x9E37_79B9));
    let len = 200 + rng.below(4000) as usize;
    let mut out = format!("%PDF-1.4 fitxer {id} — {}\n", rng.pick(WORDS)).into_bytes();
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes the moodledata of the fixture's `files` table under `dir`: each content once,
/// at `filedir/<h0h1>/<h2h3>/<sha1>` as Moodle stores it. Returns the files written.
pub fn write_files(dir: &std::path::Path, o: &FixtureOptions) -> std::io::Result<u64> {
    let Some(t) = tables(&o.prefix, false)
        .into_iter()
        .find(|t| t.name == format!("{}files", o.prefix))
    else {
        return Ok(0);
    };
    let (id, ch) = (
        t.columns.iter().position(|c| c.name == "id").unwrap_or(0),
        t.columns
            .iter()
            .position(|c| c.name == "contenthash")
            .unwrap_or(0),
    );
    let mut written = 0;
    for r in RowIter::new(&t, o) {
        let (Value::Int(n), Value::Text(hash)) = (&r[id], &r[ch]) else {
            continue;
        };
        let content = file_content(o.seed, *n);
        if sha1_hex(&content) != *hash {
            continue; // a directory entry
        }
        let sub = dir.join("filedir").join(&hash[0..2]).join(&hash[2..4]);
        std::fs::create_dir_all(&sub)?;
        std::fs::write(sub.join(hash), &content)?;
        written += 1;
    }
    Ok(written)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn person(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
}

fn html(rng: &mut Rng, o: &FixtureOptions, i: u64) -> String {
    format!(
        "<p>{} de {} — <a href=\"{}/mod/forum/view.php?id={i}\">enllaç</a> \
         <img src=\"{}/pluginfile.php/{}/mod_forum/post/{i}/imatge.png\" alt=\"{}\"/> {}</p>",
        rng.pick(WORDS),
        person(rng),
        o.wwwroot,
        o.wwwroot,
        rng.below(500) + 1,
        rng.pick(WORDS),
        if i.is_multiple_of(3) {
            rng.pick(EMOJI)
        } else {
            ""
        }
    )
}

fn trunc(s: String, len: u32) -> String {
    s.chars().take(len as usize).collect()
}

fn row(t: &Table, i: u64, rng: &mut Rng, o: &FixtureOptions) -> Row {
    let mut out = Vec::with_capacity(t.columns.len());
    for c in &t.columns {
        let name = c.name.as_str();
        // NULL and the empty string both occur, and stay distinct.
        if c.nullable && i % 5 == 1 {
            out.push(Value::Null);
            continue;
        }
        let v = match c.ty {
            ColType::Int { bytes } => Value::Int(if name == "id" {
                id_of(i)
            } else if t.name.ends_with("a2a_pairs") && name == "n" {
                (i / 3) as i64
            } else if ["instanceid", "attemptnumber"].contains(&name)
                || (t.name.ends_with("grade_grades") && name == "userid")
            {
                // Parts of unique indexes.
                i as i64
            } else if name == "big" {
                [i64::MAX, i64::MIN, 9_007_199_254_740_993, -1, 0][(i % 5) as usize]
            } else if name.starts_with("time")
                || ["created", "modified", "added", "lastaccess", "startdate"].contains(&name)
            {
                1_600_000_000 + rng.below(200_000_000) as i64
            } else if name == "filesize" {
                if i.is_multiple_of(11) {
                    5_000_000_000 + i as i64
                } else {
                    rng.below(10_000_000) as i64
                }
            } else {
                let max = match bytes {
                    1 => 2,
                    2 => 100,
                    _ => 5000,
                };
                rng.below(max) as i64
            }),
            ColType::Number { scale, .. } => {
                let whole = rng.below(100);
                let frac = rng.below(10u64.pow(scale.min(9)));
                let neg = if i % 9 == 4 { "-" } else { "" };
                Value::Decimal(crate::schema::normalize_decimal(&format!(
                    "{neg}{whole}.{frac:0width$}",
                    width = scale.min(9) as usize
                )))
            }
            ColType::Float { double } => {
                let f = match i % 4 {
                    0 => 0.1 + 0.2,
                    1 => -1.0e-300,
                    2 => 1.0 / 3.0,
                    _ => rng.next() as f64 / 7.0,
                };
                Value::Float(if double { f } else { f64::from(f as f32) })
            }
            ColType::Char { len } => Value::Text(trunc(
                match name {
                    "contenthash" | "pathnamehash" | "sid" | "stamp" => {
                        format!("{:016x}{:016x}{:08x}", rng.next(), rng.next(), i)
                    }
                    // The first user is the site's administrator, as in Moodle.
                    "username" if i == 0 => "admin".to_owned(),
                    "username" => format!("usuari{i}"),
                    "email" => format!("usuari{i}@xtec.cat"),
                    "firstname" => rng.pick(FIRST).to_owned(),
                    "lastname" => rng.pick(LAST).to_owned(),
                    "fullname" | "name" | "subject" | "label" | "who" => {
                        if t.name.ends_with("config") || t.name.ends_with("config_plugins") {
                            format!("setting_{i}")
                        } else {
                            format!("{} {} {}", rng.pick(WORDS), person(rng), i)
                        }
                    }
                    "shortname" => format!("C{i}"),
                    "lang" => ["ca", "es", "en", "oc"][(i % 4) as usize].to_owned(),
                    "plugin" => ["core", "mod_forum", "auth_manual", "theme_xtec2020"]
                        [(i % 4) as usize]
                        .to_owned(),
                    "ip" | "firstip" | "lastip" => {
                        format!("10.{}.{}.{}", i % 256, rng.below(256), rng.below(256))
                    }
                    "filename" => format!("{}_{i}.pdf", rng.pick(WORDS).replace(' ', "_")),
                    "filepath" | "path" => format!("/{}/{i}/", rng.below(50)),
                    "eventname" => "\\core\\event\\course_viewed".to_owned(),
                    _ if i.is_multiple_of(6) => String::new(),
                    _ => rng.pick(WORDS).to_owned(),
                },
                len,
            )),
            ColType::Text => Value::Text(match name {
                // What COPY's text format and JSON must escape.
                "note" if i.is_multiple_of(3) => format!("línia {i}\nsegona\tcol \\N \\ fi\r"),
                "value" if i.is_multiple_of(4) => String::new(),
                "value" => format!("{}/{}", o.wwwroot, rng.pick(WORDS)),
                "sessdata" => format!("USER|O:8:\"stdClass\":1:{{s:2:\"id\";i:{i};}}"),
                _ if i % 7 == 3 => String::new(),
                _ => html(rng, o, i),
            }),
            ColType::Binary => Value::Bytes(
                (0..(i % 64) as u8)
                    .map(|b| b.wrapping_mul(37).wrapping_add(i as u8))
                    .chain([0, 255, b'\n', b'\\'])
                    .collect(),
            ),
            ColType::Bool => Value::Bool(i.is_multiple_of(2)),
            ColType::Date => Value::Date(format!(
                "20{:02}-{:02}-{:02}",
                10 + i % 15,
                1 + i % 12,
                1 + i % 28
            )),
            ColType::Timestamp => Value::Timestamp(crate::schema::normalize_timestamp(&format!(
                "2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
                1 + i % 12,
                1 + i % 28,
                i % 24,
                i % 60,
                (i * 7) % 60,
                (i * 1234) % 1_000_000
            ))),
        };
        out.push(v);
    }
    out
}

/// Writes the fixture into `db`: tables, rows, indexes, and sequences that run ahead of
/// the last id, as they do after rows are deleted. Refuses a database that already holds
/// tables of the prefix.
pub async fn generate(db: &Db, o: &FixtureOptions) -> Result<FixtureReport, DbError> {
    let tables = tables_of(o);
    let existing = db.list_tables(&o.prefix).await?;
    if let Some(first) = existing.first() {
        return Err(DbError::NotEmpty(format!(
            "{} already holds {} table(s) with prefix {:?} (e.g. {first}); nothing was changed",
            db.locator(),
            existing.len(),
            o.prefix
        )));
    }
    let mut total = 0;
    for t in &tables {
        db.create_table(t).await?;
        let mut it = RowIter::new(t, o);
        let count = it.total();
        total += count;
        loop {
            let part: Vec<Row> = it.by_ref().take(2000).collect();
            if part.is_empty() {
                break;
            }
            db.load(t, part, None).await?;
        }
        let mut t2 = t.clone();
        t2.next_id = Some(id_of(count) + 5);
        db.create_indexes(t).await?;
        db.carry_sequence(&t2).await?;
    }
    Ok(FixtureReport {
        tables: tables.len(),
        rows: total,
    })
}

/// One small site database at `loc`, as tests and demos set one up: connects (a SQLite
/// file is created if missing) and generates the fixture with the default options but the
/// old site's address `wwwroot` and the `seed`. Refuses a database that already holds a
/// site, as [`generate`] does.
pub async fn site_db(loc: &Locator, wwwroot: &str, seed: u64) -> Result<FixtureReport, DbError> {
    let db = Db::connect(loc, true).await?;
    let o = FixtureOptions {
        seed,
        wwwroot: wwwroot.into(),
        ..FixtureOptions::default()
    };
    generate(&db, &o).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moodle(scale: u64) -> FixtureOptions {
        FixtureOptions {
            scale,
            shape: Shape::Moodle,
            ..FixtureOptions::default()
        }
    }

    #[test]
    fn the_moodle_shape_has_about_500_tables_with_a_long_tail() {
        let o = moodle(100);
        let tables = tables_of(&o);
        assert!((450..=560).contains(&tables.len()), "{}", tables.len());
        let mut names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), tables.len(), "every name once");
        assert!(
            names.iter().all(|n| n.len() <= 48),
            "short enough for every engine"
        );

        let rows: Vec<(String, u64)> = tables
            .iter()
            .map(|t| (t.name.clone(), RowIter::new(t, &o).total()))
            .collect();
        let small = rows.iter().filter(|(_, n)| *n < 10).count();
        assert!(
            small * 10 >= tables.len() * 6,
            "{small} of {} under 10 rows",
            tables.len()
        );
        // A few tables hold almost everything, and only they grow with the scale.
        let mut counts: Vec<u64> = rows.iter().map(|(_, n)| *n).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: u64 = counts.iter().sum();
        let top: u64 = counts.iter().take(20).sum();
        assert!(
            top * 100 >= total * 85,
            "the 20 biggest hold {top} of {total} rows"
        );
        // The tail rows are the same at any scale, and at 1 GB (scale 1000) a sliver.
        let tail = |scale: u64| -> u64 {
            let o = moodle(scale);
            tables_of(&o)
                .iter()
                .filter(|t| {
                    tail_names()
                        .iter()
                        .any(|n| t.name == format!("{}{n}", o.prefix))
                })
                .map(|t| RowIter::new(t, &o).total())
                .sum()
        };
        assert_eq!(tail(1), tail(100));
        let all_1000: u64 = tables_of(&moodle(1000))
            .iter()
            .map(|t| RowIter::new(t, &moodle(1000)).total())
            .sum();
        assert!(tail(1000) * 50 < all_1000, "{} of {all_1000}", tail(1000));

        // Moodle's types are there: text, bytes, decimals, nullable columns, unique and
        // compound indexes, and every table keyed by an id sequence.
        let cols = || tables.iter().flat_map(|t| &t.columns);
        assert!(cols().any(|c| c.ty == ColType::Text && c.nullable));
        assert!(cols().any(|c| c.ty == ColType::Binary));
        assert!(cols().any(|c| matches!(c.ty, ColType::Number { .. })));
        let idx = || tables.iter().flat_map(|t| &t.indexes);
        assert!(idx().any(|i| i.unique && i.columns.len() > 1));
        assert!(idx().any(|i| !i.unique && i.columns.len() > 1));
        assert!(tables.iter().all(|t| t.primary_key == ["id"]));
    }

    #[test]
    fn the_small_shape_is_unchanged() {
        let o = FixtureOptions::default();
        assert_eq!(tables_of(&o).len(), tables(&o.prefix, false).len());
    }
}
