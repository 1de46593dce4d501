//! Gateway sessions: people logging in to hosts during their working hours
//! and running ordinary commands, typed with human timing, written as
//! Teleport audit events, asciinema casts, Cowrie JSON logs and trailhound
//! session JSON lines.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use rand::seq::SliceRandom;

use super::GeneratedFile;
use super::cloudtrail::work_window;
use super::linked::AWS_COMMANDS;
use super::org::{Host, HostRole, Org, Person};
use super::util::{
    DAY, SECOND, exp, hash, hex, normalish, pick, push_escaped, push_i64, push_kv, push_str,
    push_time, push_u64, uuid_from, weekday,
};

/// The log format a session is written in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SessionFormat {
    /// Teleport audit events.
    Teleport,
    /// An asciinema v2 cast.
    Asciinema,
    /// Cowrie JSON log.
    Cowrie,
    /// trailhound session JSON lines.
    Jsonl,
}

/// One command typed in a session.
pub(crate) struct Cmd {
    /// The command line.
    pub text: String,
    /// First keystroke.
    pub start: i64,
    /// Milliseconds before each keystroke after the first, the last being Enter.
    pub intervals_ms: Vec<u32>,
    /// When Enter was pressed.
    pub enter: i64,
    /// What the terminal printed.
    pub output: String,
    /// Exit status.
    pub return_code: i32,
    /// Ctrl-C pressed this long after Enter (for `tail -f`), in microseconds.
    pub interrupt: Option<i64>,
    /// Keys typed inside a full-screen program (vim) after it started.
    pub inner_keys: Option<&'static str>,
    /// Index of the label this command belongs to, if it is an attack step.
    pub label: Option<usize>,
    /// The text arrived in one chunk (pasted); only Enter was typed after it.
    pub pasted: bool,
}

/// One gateway session.
pub(crate) struct Session {
    /// Log format.
    pub format: SessionFormat,
    /// Session id.
    pub id: String,
    /// Login (equal to the IAM user name).
    pub user: String,
    /// Target host name.
    pub host: String,
    /// Target host address.
    pub host_ip: String,
    /// Client address.
    pub client_ip: String,
    /// Start time.
    pub start: i64,
    /// End time.
    pub end: i64,
    /// Commands in order.
    pub cmds: Vec<Cmd>,
}

/// A labelled session event: (label index, event id, time).
pub(crate) type LabelledEvent = (usize, String, i64);

/// Benign commands: (command, output, host roles it fits; 0 = any).
const COMMON: &[(&str, &str)] = &[
    ("ls", "app  backups  deploy.sh  logs  README.md\r\n"),
    (
        "ls -la",
        "total 40\r\ndrwxr-x--- 6 {user} {user} 4096 Nov  2 08:12 .\r\ndrwxr-xr-x 9 root root 4096 Sep 30 11:02 ..\r\n-rw-r--r-- 1 {user} {user}  220 Sep 30 11:02 .profile\r\ndrwxrwxr-x 8 {user} {user} 4096 Nov  2 08:10 app\r\n-rwxr-xr-x 1 {user} {user} 1822 Oct 21 16:40 deploy.sh\r\n",
    ),
    ("pwd", "/home/{user}\r\n"),
    ("cd /var/www/app", ""),
    ("cd", ""),
    (
        "df -h",
        "Filesystem       Size  Used Avail Use% Mounted on\r\n/dev/nvme0n1p1    50G   21G   29G  42% /\r\ntmpfs            3.9G     0  3.9G   0% /dev/shm\r\n",
    ),
    (
        "free -m",
        "               total        used        free      shared  buff/cache   available\r\nMem:            7941        3120         812          12        4008        4512\r\nSwap:              0           0           0\r\n",
    ),
    (
        "uptime",
        " 10:14:02 up 41 days,  3:12,  1 user,  load average: 0.42, 0.38, 0.35\r\n",
    ),
    ("whoami", "{user}\r\n"),
    (
        "git status",
        "On branch main\r\nYour branch is up to date with 'origin/main'.\r\n\r\nnothing to commit, working tree clean\r\n",
    ),
    (
        "git pull",
        "Updating 3f2a91c..8b7d0e4\r\nFast-forward\r\n config/{app}.yaml | 4 ++--\r\n 1 file changed, 2 insertions(+), 2 deletions(-)\r\n",
    ),
    (
        "git log --oneline -5",
        "8b7d0e4 Raise {app} worker pool to 16\r\n3f2a91c Fix retry backoff\r\n91c0d2e Bump base image\r\n77ae310 Add health check path\r\n0d4e2b9 Tidy logging\r\n",
    ),
    (
        "vim config/{app}.yaml",
        "\u{1b}[?1049h\u{1b}[H\u{1b}[2J\"config/{app}.yaml\" 42L, 1180B\r\n",
    ),
];

const WEB: &[(&str, &str)] = &[
    (
        "systemctl status nginx",
        "\u{25cf} nginx.service - A high performance web server and a reverse proxy server\r\n     Loaded: loaded (/lib/systemd/system/nginx.service; enabled; vendor preset: enabled)\r\n     Active: active (running) since Mon 2026-10-12 08:01:44 UTC; 3 weeks ago\r\n   Main PID: 1184 (nginx)\r\n",
    ),
    (
        "tail -f /var/log/app.log",
        "2026-11-02T10:14:05Z INFO  {app} request completed status=200 duration_ms=41\r\n2026-11-02T10:14:06Z INFO  {app} request completed status=200 duration_ms=38\r\n2026-11-02T10:14:06Z WARN  {app} slow upstream duration_ms=812\r\n",
    ),
    (
        "tail -n 50 /var/log/nginx/error.log",
        "2026/11/02 09:58:12 [warn] 1187#1187: *88123 upstream response is buffered to a temporary file\r\n",
    ),
    (
        "ps aux | grep nginx",
        "root      1184  0.0  0.1  55284  1540 ?  Ss   Oct12   0:00 nginx: master process /usr/sbin/nginx\r\nwww-data  1187  0.3  0.9  58112  7420 ?  S    Oct12  98:11 nginx: worker process\r\n",
    ),
    (
        "vim /etc/nginx/conf.d/app.conf",
        "\u{1b}[?1049h\u{1b}[H\u{1b}[2J\"/etc/nginx/conf.d/app.conf\" 38L, 1022B\r\n",
    ),
    (
        "sudo nginx -t",
        "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\r\nnginx: configuration file /etc/nginx/nginx.conf test is successful\r\n",
    ),
    ("sudo systemctl reload nginx", ""),
    (
        "curl -sI http://localhost:8080/healthz",
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n",
    ),
];

const DB: &[(&str, &str)] = &[
    (
        "psql -h localhost -U app -d {app} -c 'select count(*) from orders;'",
        " count \r\n-------\r\n 48213\r\n(1 row)\r\n",
    ),
    (
        "psql -h localhost -U app -d {app} -c 'select state, count(*) from pg_stat_activity group by 1;'",
        " state  | count \r\n--------+-------\r\n active |     3\r\n idle   |    27\r\n(2 rows)\r\n",
    ),
    (
        "systemctl status postgresql",
        "\u{25cf} postgresql.service - PostgreSQL RDBMS\r\n     Loaded: loaded (/lib/systemd/system/postgresql.service; enabled)\r\n     Active: active (exited) since Mon 2026-10-12 08:01:40 UTC; 3 weeks ago\r\n",
    ),
    (
        "tail -n 100 /var/log/postgresql/postgresql-16-main.log",
        "2026-11-02 09:40:11.201 UTC [22811] LOG:  checkpoint complete: wrote 1841 buffers (11.2%)\r\n",
    ),
];

const BASTION: &[(&str, &str)] = &[
    (
        "kubectl get pods -n {app}",
        "NAME                        READY   STATUS    RESTARTS   AGE\r\n{app}-api-7d9f8b6c5-x2k4p   1/1     Running   0          3d2h\r\n{app}-api-7d9f8b6c5-q8m1z   1/1     Running   0          3d2h\r\n{app}-worker-5c6b9d-lk2pq   1/1     Running   1          6d\r\n",
    ),
    (
        "kubectl describe pod {app}-api-7d9f8b6c5-x2k4p -n {app}",
        "Name:             {app}-api-7d9f8b6c5-x2k4p\r\nNamespace:        {app}\r\nStatus:           Running\r\nIP:               10.20.3.41\r\n",
    ),
    (
        "kubectl logs deploy/{app}-api -n {app} --tail=50",
        "{\"level\":\"info\",\"msg\":\"request completed\",\"status\":200,\"duration_ms\":37}\r\n",
    ),
    (
        "kubectl get nodes",
        "NAME                          STATUS   ROLES    AGE   VERSION\r\nip-10-20-1-17.ec2.internal    Ready    <none>   12d   v1.30.4-eks-a737599\r\nip-10-20-2-88.ec2.internal    Ready    <none>   12d   v1.30.4-eks-a737599\r\n",
    ),
    (
        "kubectl rollout status deploy/{app}-api -n {app}",
        "deployment \"{app}-api\" successfully rolled out\r\n",
    ),
];

const WORKER: &[(&str, &str)] = &[
    (
        "systemctl status etl-worker",
        "\u{25cf} etl-worker.service - Nightly ETL worker\r\n     Active: active (running) since Sun 2026-11-01 01:00:02 UTC; 1 day ago\r\n",
    ),
    (
        "journalctl -u etl-worker --since '1 hour ago' --no-pager",
        "Nov 02 09:12:44 worker-01 etl-worker[4410]: batch 812 done rows=120433\r\n",
    ),
    (
        "docker ps",
        "CONTAINER ID   IMAGE                 COMMAND         STATUS        NAMES\r\n4b1e2f9a0c3d   {app}-worker:1.42.0   \"/entrypoint\"   Up 26 hours   {app}-worker\r\n",
    ),
];

/// Typing model for a person: mean and spread of the time between keys.
#[derive(Clone, Copy)]
pub(crate) struct Typist {
    /// Mean interval, milliseconds.
    pub mean_ms: f64,
    /// Standard deviation, milliseconds.
    pub sd_ms: f64,
}

impl Typist {
    /// A person's typing rhythm, stable for a seed and login: a mean of
    /// 140 to 260 ms between keys with a wide spread, plus the pauses
    /// (below) that make a human's deviation large.
    pub fn for_user(seed: u64, user: &str) -> Typist {
        let h = hash(&[seed, 400, super::org::str_hash(user)]);
        Typist {
            mean_ms: 140.0 + (h % 120) as f64,
            sd_ms: 45.0 + ((h >> 8) % 70) as f64,
        }
    }
}

/// How the keys of a command line arrive.
#[derive(Clone, Copy)]
pub(crate) enum Keying {
    /// Typed by a person.
    Typed(Typist),
    /// Pasted in one chunk, then Enter pressed by the person.
    Pasted(Typist),
    /// Sent by a program, key by key, fast and even.
    Scripted {
        /// Mean interval, milliseconds.
        mean_ms: f64,
        /// Standard deviation, milliseconds.
        sd_ms: f64,
    },
}

/// Builds a command typed by a person from `start`, filling in its timing.
pub(crate) fn typed(
    rng: &mut SmallRng,
    typist: Typist,
    text: String,
    output: String,
    start: i64,
) -> Cmd {
    keyed(rng, Keying::Typed(typist), text, output, start)
}

/// Builds a command entered from `start` as `keying` says.
pub(crate) fn keyed(
    rng: &mut SmallRng,
    keying: Keying,
    text: String,
    output: String,
    start: i64,
) -> Cmd {
    let keys = text.chars().count();
    let mut intervals_ms = Vec::with_capacity(keys);
    let human = |rng: &mut SmallRng, typist: Typist| {
        let mut ms = typist.mean_ms + typist.sd_ms * normalish(rng);
        if rng.gen_bool(0.04) {
            ms += rng.gen_range(300.0..1200.0);
        }
        ms.clamp(25.0, 3000.0) as u32
    };
    for k in 0..keys {
        let ms = match keying {
            Keying::Typed(typist) => human(rng, typist),
            // Every key but the Enter arrives at once.
            Keying::Pasted(typist) => {
                if k + 1 == keys {
                    human(rng, typist).max(150) + rng.gen_range(100..700)
                } else {
                    0
                }
            }
            Keying::Scripted { mean_ms, sd_ms } => (mean_ms + sd_ms * normalish(rng))
                .clamp(1.0, 1000.0)
                .round() as u32,
        };
        intervals_ms.push(ms);
    }
    let t = start
        + intervals_ms
            .iter()
            .map(|ms| i64::from(*ms) * 1000)
            .sum::<i64>();
    Cmd {
        text,
        start,
        intervals_ms,
        enter: t,
        output,
        return_code: 0,
        interrupt: None,
        inner_keys: None,
        label: None,
        pasted: matches!(keying, Keying::Pasted(_)),
    }
}

fn fill_placeholders(s: &str, user: &str, app: &str) -> String {
    s.replace("{user}", user).replace("{app}", app)
}

/// The commands that fit a kind of host, besides the common ones.
fn special(role: HostRole) -> &'static [(&'static str, &'static str)] {
    match role {
        HostRole::Web => WEB,
        HostRole::Db => DB,
        HostRole::Bastion => BASTION,
        HostRole::Worker => WORKER,
    }
}

/// Typing, waiting and interrupting for one ordinary command; returns the
/// time the prompt is back.
fn finish_command(rng: &mut SmallRng, cmd: &mut Cmd, vim_keys: &'static str) -> i64 {
    let mut busy = rng.gen_range(50_000..600_000);
    if cmd.text.starts_with("tail -f") {
        let after = rng.gen_range(5 * SECOND..40 * SECOND);
        cmd.interrupt = Some(after);
        cmd.return_code = 130;
        busy += after;
    } else if cmd.text.starts_with("vim ") {
        cmd.inner_keys = Some(vim_keys);
        busy += rng.gen_range(5 * SECOND..90 * SECOND);
    } else if cmd.text.starts_with("aws ") {
        busy += rng.gen_range(SECOND..3 * SECOND);
    }
    cmd.enter + busy + exp(rng, 7.0 * SECOND as f64) as i64 + SECOND
}

/// Adds ordinary commands to `cmds` from `t`, returning the time after the last.
#[allow(clippy::too_many_arguments)]
pub(crate) fn benign_commands(
    rng: &mut SmallRng,
    typist: Typist,
    role: HostRole,
    user: &str,
    app: &str,
    count: usize,
    mut t: i64,
    cmds: &mut Vec<Cmd>,
) -> i64 {
    for _ in 0..count {
        let (c, o) = if rng.gen_bool(0.55) {
            pick(rng, special(role))
        } else {
            pick(rng, COMMON)
        };
        let mut cmd = typed(
            rng,
            typist,
            fill_placeholders(c, user, app),
            fill_placeholders(o, user, app),
            t,
        );
        t = finish_command(rng, &mut cmd, ":q\r");
        cmds.push(cmd);
    }
    t
}

/// What a person runs on one host: a handful of commands they come back
/// to. Each visit runs all of them, in an order of the day, and a few again,
/// so the first visit already shows everything the person does there.
/// Habits are what makes a gateway user's baseline learnable.
struct Habit {
    /// (command, output) with placeholders filled in.
    cmds: Vec<(String, String)>,
}

impl Habit {
    fn new(seed: u64, pi: usize, person: &Person, hi: usize, host: &Host) -> Habit {
        let mut rng = SmallRng::seed_from_u64(hash(&[seed, 403, pi as u64, hi as u64]));
        let mut picked: Vec<(&str, &str)> = Vec::new();
        let mut take = |rng: &mut SmallRng, from: &[(&'static str, &'static str)], n: usize| {
            let mut pool: Vec<(&'static str, &'static str)> = from.to_vec();
            pool.shuffle(rng);
            picked.extend(pool.into_iter().take(n));
        };
        let n = rng.gen_range(2..=3);
        take(&mut rng, COMMON, n);
        let n = rng.gen_range(2..=3);
        take(&mut rng, special(host.role), n);
        if host.role == HostRole::Bastion && person.aws_on_hosts {
            let n = rng.gen_range(2..=3);
            take(&mut rng, AWS_COMMANDS, n);
        }
        let cmds = picked
            .into_iter()
            .map(|(c, o)| {
                (
                    fill_placeholders(c, &person.name, person.app),
                    fill_placeholders(o, &person.name, person.app),
                )
            })
            .collect();
        Habit { cmds }
    }

    /// One visit's commands: all of the habit in a shuffled order, then
    /// `extra` of them again.
    fn visit(&self, rng: &mut SmallRng, extra: usize) -> Vec<(String, String)> {
        let mut out = self.cmds.clone();
        out.shuffle(rng);
        for _ in 0..extra {
            if let Some(c) = self.cmds.get(rng.gen_range(0..self.cmds.len().max(1))) {
                out.push(c.clone());
            }
        }
        out
    }
}

/// The format used by sessions to a host (each fleet sits behind its own gateway).
pub(crate) fn host_format(hi: usize) -> SessionFormat {
    match hi % 4 {
        0 => SessionFormat::Teleport,
        1 => SessionFormat::Asciinema,
        2 => SessionFormat::Cowrie,
        _ => SessionFormat::Jsonl,
    }
}

/// A session id in the style of the format.
pub(crate) fn session_id(format: SessionFormat, h: u64) -> String {
    match format {
        SessionFormat::Cowrie => hex(12, h),
        _ => uuid_from(h),
    }
}

/// Plans everyone's ordinary sessions inside `[start, end)`.
///
/// Each person logs in to their hosts in turn, once to three times a
/// working day, and runs their usual commands there (see `Habit`), typed
/// with their own rhythm; people who paste do so with the same long
/// commands each time, and press Enter themselves.
pub(crate) fn plan_background(org: &Org, start: i64, end: i64) -> Vec<Session> {
    let mut sessions = Vec::new();
    let first = start.div_euclid(DAY) - 1;
    let last = (end - 1).div_euclid(DAY) + 1;
    for (pi, person) in org.people.iter().enumerate() {
        if person.hosts.is_empty() {
            continue;
        }
        let typist = Typist::for_user(org.seed, &person.name);
        let habits: Vec<Habit> = person
            .hosts
            .iter()
            .filter_map(|hi| {
                org.hosts
                    .get(*hi)
                    .map(|h| Habit::new(org.seed, pi, person, *hi, h))
            })
            .collect();
        let mut turn = 0usize;
        for day in first..=last {
            let Some((ws, we)) = work_window(org, pi, day) else {
                continue;
            };
            let mut rng = SmallRng::seed_from_u64(hash(&[org.seed, 401, pi as u64, day as u64]));
            let n = match rng.gen_range(0..20) {
                0..=10 => 1,
                11..=17 => 2,
                _ => 3,
            };
            for k in 0..n {
                let slot = turn % person.hosts.len();
                turn += 1;
                let (Some(&hi), Some(habit)) = (person.hosts.get(slot), habits.get(slot)) else {
                    continue;
                };
                let Some(host) = org.hosts.get(hi) else {
                    continue;
                };
                let format = host_format(hi);
                let s0 = rng.gen_range(ws..we.max(ws + 1));
                let mut cmds = Vec::new();
                let extra = rng.gen_range(0..=8);
                let mut t = s0 + rng.gen_range(SECOND..4 * SECOND);
                for (text, output) in habit.visit(&mut rng, extra) {
                    let paste = person.paster
                        && text.len() >= 30
                        && hash(&[org.seed, 405, pi as u64, super::org::str_hash(&text)])
                            .is_multiple_of(2);
                    let keying = if paste {
                        Keying::Pasted(typist)
                    } else {
                        Keying::Typed(typist)
                    };
                    let mut cmd = keyed(&mut rng, keying, text, output, t);
                    t = finish_command(&mut rng, &mut cmd, person.vim_keys);
                    cmds.push(cmd);
                }
                let exit = typed(&mut rng, typist, "exit".into(), "logout\r\n".into(), t);
                let stop = exit.enter + rng.gen_range(20_000..200_000);
                cmds.push(exit);
                if s0 < start || stop >= end {
                    continue;
                }
                let id = session_id(format, hash(&[org.seed, 402, pi as u64, day as u64, k]));
                // The client address follows the person's habit like their API calls.
                let home = hash(&[org.seed, 406, pi as u64, day as u64, k]) % 1000;
                let at_home = if weekday(day * DAY) >= 5 {
                    person.home_share > 0.0
                } else {
                    (home as f64) < person.home_share * 1000.0
                };
                sessions.push(Session {
                    format,
                    id,
                    user: person.name.clone(),
                    host: host.name.clone(),
                    host_ip: host.ip.clone(),
                    client_ip: if at_home {
                        person.home_ip.clone()
                    } else {
                        person.office_ip.clone()
                    },
                    start: s0,
                    end: stop,
                    cmds,
                });
            }
        }
    }
    sessions
}

/// What writing sessions produced.
pub(crate) struct Written {
    /// Files.
    pub files: Vec<GeneratedFile>,
    /// Session events written.
    pub events: u64,
    /// Event ids of labelled commands.
    pub labelled: Vec<LabelledEvent>,
}

/// Writes all sessions in their formats.
pub(crate) fn write_all(seed: u64, sessions: &[Session]) -> Written {
    let mut w = Written {
        files: Vec::new(),
        events: 0,
        labelled: Vec::new(),
    };
    write_teleport(seed, sessions, &mut w);
    for s in sessions
        .iter()
        .filter(|s| s.format == SessionFormat::Asciinema)
    {
        write_cast(s, &mut w);
    }
    write_cowrie(seed, sessions, &mut w);
    write_jsonl(sessions, &mut w);
    w
}

/// A line of a multi-session log, ordered by time then by position.
struct Line {
    time: i64,
    order: (usize, usize),
    bytes: Vec<u8>,
    label: Option<(usize, String)>,
}

/// Splits a command line into pipeline stages and words (no quoting rules
/// beyond single quotes, which is all the generated commands use).
fn stages(cmd: &str) -> Vec<Vec<String>> {
    cmd.split(" | ")
        .map(|stage| {
            let mut words = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            for ch in stage.chars() {
                match ch {
                    '\'' => quoted = !quoted,
                    ' ' if !quoted => {
                        if !cur.is_empty() {
                            words.push(std::mem::take(&mut cur));
                        }
                    }
                    _ => cur.push(ch),
                }
            }
            if !cur.is_empty() {
                words.push(cur);
            }
            words
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn program_path(program: &str) -> String {
    match program {
        "cd" | "history" | "unset" | "export" | "exit" | "pwd" => String::new(),
        "systemctl" | "journalctl" | "sudo" | "psql" | "kubectl" | "docker" | "git" | "vim"
        | "curl" | "tail" | "grep" | "free" | "uptime" | "whoami" | "id" | "uname" | "cat"
        | "env" | "ps" | "df" | "ls" | "nginx" | "wget" | "chmod" | "bash" | "nc" | "python3" => {
            let dir = match program {
                "nginx" => "/usr/sbin",
                "ls" | "cat" | "ps" | "df" | "grep" | "bash" | "uname" | "chmod" => "/usr/bin",
                "kubectl" => "/usr/local/bin",
                _ => "/usr/bin",
            };
            format!("{dir}/{program}")
        }
        other => format!("/usr/bin/{other}"),
    }
}

fn teleport_head(buf: &mut Vec<u8>, code: &str, ei: u64, event: &str) {
    buf.extend_from_slice(b"{\"code\":\"");
    buf.extend_from_slice(code.as_bytes());
    buf.extend_from_slice(b"\",\"ei\":");
    push_u64(buf, ei);
    buf.extend_from_slice(b",\"event\":\"");
    buf.extend_from_slice(event.as_bytes());
    buf.push(b'"');
}

fn teleport_common(buf: &mut Vec<u8>, s: &Session, server_id: &str, time: i64, uid: &str) {
    buf.push(b',');
    push_kv(buf, "login", &s.user);
    buf.extend_from_slice(b",\"namespace\":\"default\",");
    push_kv(buf, "server_hostname", &s.host);
    buf.push(b',');
    push_kv(buf, "server_id", server_id);
    buf.push(b',');
    push_kv(buf, "sid", &s.id);
    buf.extend_from_slice(b",\"time\":\"");
    push_time(buf, time, 3);
    buf.extend_from_slice(b"\",");
    push_kv(buf, "uid", uid);
    buf.push(b',');
    push_kv(buf, "user", &s.user);
}

fn write_teleport(seed: u64, sessions: &[Session], w: &mut Written) {
    let mut lines: Vec<Line> = Vec::new();
    for (si, s) in sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| s.format == SessionFormat::Teleport)
    {
        let server_id = uuid_from(hash(&[seed, 410, super::org::str_hash(&s.host)]));
        let mut ei = 0u64;
        let mut n = 0usize;
        let uid = |k: u64| uuid_from(hash(&[seed, 411, super::org::str_hash(&s.id), k]));
        let mut b = Vec::with_capacity(640);
        teleport_head(&mut b, "T2000I", ei, "session.start");
        b.push(b',');
        push_kv(&mut b, "addr.local", &format!("{}:3022", s.host_ip));
        b.push(b',');
        let port = 40_000 + (hash(&[seed, 412, super::org::str_hash(&s.id)]) % 20_000);
        push_kv(&mut b, "addr.remote", &format!("{}:{port}", s.client_ip));
        b.extend_from_slice(b",\"cluster_name\":\"acme.teleport.sh\",\"proto\":\"ssh\",");
        push_kv(&mut b, "server_addr", &format!("{}:3022", s.host_ip));
        b.extend_from_slice(b",\"server_labels\":{\"env\":\"prod\"},\"session_recording\":\"node\",\"size\":\"120:40\",\"user_kind\":1");
        teleport_common(&mut b, s, &server_id, s.start, &uid(ei));
        b.push(b'}');
        lines.push(Line {
            time: s.start,
            order: (si, n),
            bytes: b,
            label: None,
        });
        n += 1;
        let mut offset = 0u64;
        for cmd in &s.cmds {
            let mut at = cmd.enter + 2_000;
            for stage in stages(&cmd.text) {
                ei += 1;
                let Some((program, args)) = stage.split_first() else {
                    continue;
                };
                let mut b = Vec::with_capacity(512);
                teleport_head(&mut b, "T4000I", ei, "session.command");
                b.extend_from_slice(b",\"argv\":[");
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        b.push(b',');
                    }
                    push_str(&mut b, a);
                }
                b.extend_from_slice(b"],\"cgroup_id\":");
                push_u64(
                    &mut b,
                    4_294_968_000 + (hash(&[seed, 413, si as u64]) % 5000),
                );
                let path = program_path(program);
                if !path.is_empty() {
                    b.push(b',');
                    push_kv(&mut b, "path", &path);
                }
                b.extend_from_slice(b",\"pid\":");
                let pid = 20_000 + (hash(&[seed, 414, si as u64, ei]) % 40_000);
                push_u64(&mut b, pid);
                b.extend_from_slice(b",\"ppid\":");
                push_u64(&mut b, 19_000 + (hash(&[seed, 415, si as u64]) % 1000));
                b.push(b',');
                push_kv(&mut b, "program", program);
                b.extend_from_slice(b",\"return_code\":");
                push_i64(&mut b, i64::from(cmd.return_code));
                teleport_common(&mut b, s, &server_id, at, &uid(ei));
                b.push(b'}');
                let label = cmd.label.map(|l| (l, format!("{}:{ei}", s.id)));
                lines.push(Line {
                    time: at,
                    order: (si, n),
                    bytes: b,
                    label,
                });
                n += 1;
                at += 1_000;
            }
            if !cmd.output.is_empty() {
                ei += 1;
                let bytes = cmd.output.len() as u64;
                let mut b = Vec::with_capacity(256);
                teleport_head(&mut b, "T2002I", ei, "session.print");
                b.extend_from_slice(b",\"bytes\":");
                push_u64(&mut b, bytes);
                b.extend_from_slice(b",\"ms\":");
                push_i64(&mut b, (at - s.start) / 1000);
                b.extend_from_slice(b",\"offset\":");
                push_u64(&mut b, offset);
                offset += bytes;
                teleport_common(&mut b, s, &server_id, at + 5_000, &uid(ei));
                b.push(b'}');
                lines.push(Line {
                    time: at + 5_000,
                    order: (si, n),
                    bytes: b,
                    label: None,
                });
                n += 1;
            }
        }
        ei += 1;
        let mut b = Vec::with_capacity(640);
        teleport_head(&mut b, "T2004I", ei, "session.end");
        b.extend_from_slice(
            b",\"enhanced_recording\":true,\"interactive\":true,\"participants\":[",
        );
        push_str(&mut b, &s.user);
        b.extend_from_slice(b"],");
        push_kv(&mut b, "server_addr", &format!("{}:3022", s.host_ip));
        b.extend_from_slice(b",\"session_recording\":\"node\",\"session_start\":\"");
        push_time(&mut b, s.start, 3);
        b.extend_from_slice(b"\",\"session_stop\":\"");
        push_time(&mut b, s.end, 3);
        b.push(b'"');
        teleport_common(&mut b, s, &server_id, s.end, &uid(ei));
        b.push(b'}');
        lines.push(Line {
            time: s.end,
            order: (si, n),
            bytes: b,
            label: None,
        });
    }
    // One audit log per UTC day, as Teleport's file backend rotates daily.
    write_daily(
        lines,
        sessions,
        |date| format!("sessions/teleport/{date}.log"),
        w,
    );
}

/// Writes lines into one file per UTC day, in time order. A labelled line
/// whose id is empty gets `<session id>:<line number in its file>`, the
/// event id the line-based parsers give it.
fn write_daily(
    mut lines: Vec<Line>,
    sessions: &[Session],
    path: impl Fn(&str) -> String,
    w: &mut Written,
) {
    lines.sort_by_key(|l| (l.time, l.order));
    let mut current: Option<(i64, Vec<u8>, u64, i64)> = None;
    let done = |day: i64, bytes: Vec<u8>, newest: i64, w: &mut Written| {
        let date = super::util::rfc3339(day * DAY, 0);
        let date = date.get(..10).unwrap_or("day");
        w.files.push(GeneratedFile {
            path: path(date),
            bytes,
            newest,
        });
    };
    for l in lines {
        let day = l.time.div_euclid(DAY);
        if current.as_ref().is_some_and(|c| c.0 != day)
            && let Some((d, bytes, _, newest)) = current.take()
        {
            done(d, bytes, newest, w);
        }
        let (_, buf, number, newest) = current.get_or_insert_with(|| (day, Vec::new(), 0, l.time));
        buf.extend_from_slice(&l.bytes);
        buf.push(b'\n');
        *number += 1;
        *newest = (*newest).max(l.time);
        w.events += 1;
        if let Some((label, id)) = l.label {
            let id = if id.is_empty() {
                let sid = sessions
                    .get(l.order.0)
                    .map(|s| s.id.as_str())
                    .unwrap_or_default();
                format!("{sid}:{number}")
            } else {
                id
            };
            w.labelled.push((label, id, l.time));
        }
    }
    if let Some((d, bytes, _, newest)) = current {
        done(d, bytes, newest, w);
    }
}

fn cast_event(buf: &mut Vec<u8>, at: f64, kind: &str, data: &str) {
    buf.push(b'[');
    let secs = format!("{at:.6}");
    buf.extend_from_slice(secs.as_bytes());
    buf.extend_from_slice(b", \"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\", \"");
    push_escaped(buf, data);
    buf.extend_from_slice(b"\"]\n");
}

fn write_cast(s: &Session, w: &mut Written) {
    let mut b = Vec::with_capacity(16 * 1024);
    b.extend_from_slice(b"{\"version\": 2, \"width\": 120, \"height\": 40, \"timestamp\": ");
    push_i64(&mut b, s.start.div_euclid(SECOND));
    b.extend_from_slice(
        b", \"env\": {\"SHELL\": \"/bin/bash\", \"TERM\": \"xterm-256color\", \"USER\": ",
    );
    push_str(&mut b, &s.user);
    b.extend_from_slice(b"}, \"session_id\": ");
    push_str(&mut b, &s.id);
    b.extend_from_slice(b", \"title\": ");
    push_str(&mut b, &format!("{}@{}", s.user, s.host));
    b.extend_from_slice(b", \"hostname\": ");
    push_str(&mut b, &s.host);
    b.extend_from_slice(b", \"remote_addr\": ");
    push_str(&mut b, &s.client_ip);
    b.extend_from_slice(b"}\n");
    let base = s.start.div_euclid(SECOND) * SECOND;
    let rel = |t: i64| (t - base) as f64 / 1e6;
    let prompt = format!("{}@{}:~$ ", s.user, s.host);
    let mut line = 2u64;
    let banner = format!(
        "Welcome to Ubuntu 24.04.1 LTS (GNU/Linux 6.8.0-1016-aws x86_64)\r\n\r\nLast login: Fri Oct 30 16:02:11 2026 from {}\r\n",
        s.client_ip
    );
    cast_event(&mut b, rel(s.start) + 0.05, "o", &banner);
    cast_event(&mut b, rel(s.start) + 0.06, "o", &prompt);
    line += 2;
    let mut ch = [0u8; 4];
    for cmd in &s.cmds {
        let mut t = cmd.start;
        if cmd.pasted {
            // A paste arrives as one chunk and is echoed as one.
            cast_event(&mut b, rel(t), "i", &cmd.text);
            cast_event(&mut b, rel(t) + 0.002, "o", &cmd.text);
            line += 2;
        } else {
            for (i, c) in cmd.text.chars().enumerate() {
                let key = c.encode_utf8(&mut ch);
                cast_event(&mut b, rel(t), "i", key);
                cast_event(&mut b, rel(t) + 0.002, "o", key);
                line += 2;
                if let Some(ms) = cmd.intervals_ms.get(i) {
                    t += i64::from(*ms) * 1000;
                }
            }
        }
        cast_event(&mut b, rel(cmd.enter), "i", "\r");
        if let Some(l) = cmd.label {
            w.labelled.push((l, format!("{}:{line}", s.id), cmd.enter));
        }
        cast_event(&mut b, rel(cmd.enter) + 0.003, "o", "\r\n");
        line += 2;
        let mut after = cmd.enter + 40_000;
        if !cmd.output.is_empty() {
            cast_event(&mut b, rel(after), "o", &cmd.output);
            line += 1;
        }
        if let Some(keys) = cmd.inner_keys {
            let mut k = after + 3 * SECOND;
            for c in keys.chars() {
                let key = c.encode_utf8(&mut ch);
                cast_event(&mut b, rel(k), "i", key);
                line += 1;
                k += 90_000 + (hash(&[super::org::str_hash(&s.id), line]) % 250_000) as i64;
            }
            cast_event(&mut b, rel(k), "o", "\u{1b}[?1049l");
            line += 1;
            after = k;
        }
        if let Some(d) = cmd.interrupt {
            let k = cmd.enter + d;
            cast_event(&mut b, rel(k), "i", "\u{3}");
            cast_event(&mut b, rel(k) + 0.002, "o", "^C\r\n");
            line += 2;
            after = k;
        }
        if cmd.text != "exit" {
            cast_event(&mut b, rel(after) + 0.01, "o", &prompt);
            line += 1;
        }
    }
    w.events += 2 + s.cmds.len() as u64;
    w.files.push(GeneratedFile {
        path: format!("sessions/asciinema/{}.cast", s.id),
        bytes: b,
        newest: s.end,
    });
}

fn cowrie_line(
    b: &mut Vec<u8>,
    event: &str,
    s: &Session,
    time: i64,
    extra: impl FnOnce(&mut Vec<u8>),
) {
    b.extend_from_slice(b"{\"eventid\":\"");
    b.extend_from_slice(event.as_bytes());
    b.push(b'"');
    extra(b);
    b.push(b',');
    push_kv(b, "src_ip", &s.client_ip);
    b.push(b',');
    push_kv(b, "session", &s.id);
    b.push(b',');
    push_kv(b, "sensor", &s.host);
    b.extend_from_slice(b",\"timestamp\":\"");
    push_time(b, time, 6);
    b.extend_from_slice(b"\"}");
}

fn write_cowrie(seed: u64, sessions: &[Session], w: &mut Written) {
    let mut lines: Vec<Line> = Vec::new();
    for (si, s) in sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| s.format == SessionFormat::Cowrie)
    {
        let port = 40_000 + (hash(&[seed, 420, super::org::str_hash(&s.id)]) % 20_000);
        let mut n = 0usize;
        let mut push = |time: i64, bytes: Vec<u8>, label: Option<(usize, String)>| {
            lines.push(Line {
                time,
                order: (si, n),
                bytes,
                label,
            });
            n += 1;
        };
        let mut b = Vec::with_capacity(320);
        cowrie_line(&mut b, "cowrie.session.connect", s, s.start, |b| {
            b.extend_from_slice(b",\"src_port\":");
            push_u64(b, port);
            b.push(b',');
            push_kv(b, "dst_ip", &s.host_ip);
            b.extend_from_slice(b",\"dst_port\":22,\"protocol\":\"ssh\",");
            push_kv(
                b,
                "message",
                &format!(
                    "New connection: {}:{port} ({}:22) [session: {}]",
                    s.client_ip, s.host_ip, s.id
                ),
            );
        });
        push(s.start, b, None);
        let mut b = Vec::with_capacity(320);
        cowrie_line(&mut b, "cowrie.client.version", s, s.start + 40_000, |b| {
            b.extend_from_slice(b",\"version\":\"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\",\"message\":\"Remote SSH version: SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\"");
        });
        push(s.start + 40_000, b, None);
        let mut b = Vec::with_capacity(320);
        cowrie_line(&mut b, "cowrie.login.success", s, s.start + 310_000, |b| {
            b.push(b',');
            push_kv(b, "username", &s.user);
            b.push(b',');
            push_kv(
                b,
                "message",
                &format!("login attempt [{}] succeeded", s.user),
            );
        });
        push(s.start + 310_000, b, None);
        for cmd in &s.cmds {
            let mut b = Vec::with_capacity(320);
            cowrie_line(&mut b, "cowrie.command.input", s, cmd.enter, |b| {
                b.push(b',');
                push_kv(b, "input", &cmd.text);
                b.push(b',');
                push_kv(b, "message", &format!("CMD: {}", cmd.text));
            });
            let label = cmd.label.map(|l| (l, String::new()));
            push(cmd.enter, b, label);
        }
        let mut b = Vec::with_capacity(320);
        let secs = (s.end - s.start) as f64 / 1e6;
        cowrie_line(&mut b, "cowrie.session.closed", s, s.end, |b| {
            b.extend_from_slice(b",\"duration\":");
            b.extend_from_slice(format!("{secs:.1}").as_bytes());
            b.push(b',');
            push_kv(
                b,
                "message",
                &format!("Connection lost after {} seconds", secs as u64),
            );
        });
        push(s.end, b, None);
    }
    // Cowrie rotates its JSON log daily.
    write_daily(
        lines,
        sessions,
        |date| format!("sessions/cowrie/cowrie.json.{date}"),
        w,
    );
}

fn mean_sd(xs: &[u32]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().map(|x| f64::from(*x)).sum::<f64>() / n;
    let var = xs
        .iter()
        .map(|x| (f64::from(*x) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

fn jsonl_head(b: &mut Vec<u8>, kind: &str, time: i64, s: &Session) {
    b.extend_from_slice(b"{\"trailhound\":\"session/v1\",\"type\":\"");
    b.extend_from_slice(kind.as_bytes());
    b.extend_from_slice(b"\",\"time\":\"");
    push_time(b, time, 3);
    b.extend_from_slice(b"\",");
    push_kv(b, "session_id", &s.id);
    b.push(b',');
    push_kv(b, "user", &s.user);
    b.extend_from_slice(b",\"gateway\":\"boundary\",");
    push_kv(b, "target", &s.host);
    b.push(b',');
    push_kv(b, "source_ip", &s.client_ip);
}

fn write_jsonl(sessions: &[Session], w: &mut Written) {
    let mut lines: Vec<Line> = Vec::new();
    for (si, s) in sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| s.format == SessionFormat::Jsonl)
    {
        // `seq` numbers a session's lines, so event ids (`<session>:<seq>`)
        // do not depend on how the lines are split into files.
        let mut n = 0usize;
        let mut push =
            |time: i64, kind: &str, body: &dyn Fn(&mut Vec<u8>), label: Option<usize>| {
                n += 1;
                let mut b = Vec::with_capacity(384);
                jsonl_head(&mut b, kind, time, s);
                b.extend_from_slice(b",\"seq\":");
                push_u64(&mut b, n as u64);
                body(&mut b);
                b.push(b'}');
                lines.push(Line {
                    time,
                    order: (si, n),
                    bytes: b,
                    label: label.map(|l| (l, format!("{}:{n}", s.id))),
                });
            };
        push(s.start, "start", &|_| {}, None);
        for cmd in &s.cmds {
            let body = |b: &mut Vec<u8>| {
                b.push(b',');
                push_kv(b, "command", &cmd.text);
                b.push(b',');
                push_kv(b, "data", &format!("{}\r", cmd.text));
                let (mean, sd) = mean_sd(&cmd.intervals_ms);
                b.extend_from_slice(b",\"keystrokes\":");
                push_u64(b, cmd.text.chars().count() as u64 + 1);
                b.extend_from_slice(
                    format!(
                        ",\"keystroke_interval_ms_mean\":{mean:.1},\"keystroke_interval_ms_stddev\":{sd:.1}"
                    )
                    .as_bytes(),
                );
            };
            push(cmd.enter, "command", &body, cmd.label);
            if !cmd.output.is_empty() {
                let bytes = cmd.output.len() as u64;
                push(
                    cmd.enter + 30_000,
                    "output",
                    &|b: &mut Vec<u8>| {
                        b.extend_from_slice(b",\"bytes\":");
                        push_u64(b, bytes);
                    },
                    None,
                );
            }
        }
        push(s.end, "end", &|_| {}, None);
    }
    write_daily(
        lines,
        sessions,
        |date| format!("sessions/gateway/sessions-{date}.jsonl"),
        w,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pipelines_and_quotes() {
        let s = stages("psql -c 'select 1;' | grep 1");
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.first().and_then(|w| w.get(2)).map(String::as_str),
            Some("select 1;")
        );
    }

    #[test]
    fn typing_takes_time() {
        let mut rng = SmallRng::seed_from_u64(1);
        let t = Typist {
            mean_ms: 150.0,
            sd_ms: 40.0,
        };
        let c = typed(&mut rng, t, "ls -la".into(), String::new(), 0);
        assert_eq!(c.intervals_ms.len(), 6);
        assert!(c.enter > 6 * 25_000);
    }
}
