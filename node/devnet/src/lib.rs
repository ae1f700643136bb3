//! `xinlian-node devnet`: a local consortium in one command. The first run writes a
//! genesis and keys for Shanghai agencies (and one Yangtze River Delta province) and
//! keys for sample enterprises into the folder; every run starts one `xinlian-node run`
//! process per member with a node key — four validators and a district observer — on
//! loopback, then loads sample data through node 0's HTTP API. The nodes stop with
//! the devnet (they exit when its pipe to them closes, however it ends).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xinlian_client::http::NodeClient;
use xinlian_client::ids::{Uscc, gtin_check_digit};
use xinlian_client::record::*;
use xinlian_client::signer::RecordSigner;
use xinlian_client::when::{Date, EventTime};
use xinlian_genesis::keys::{self, SigningKey};
use xinlian_genesis::scaffold::{
    MemberSpec, genesis_path, node_key_path, scaffold, signing_key_path,
};
use xinlian_genesis::{Genesis, Policy, Role};

fn members() -> Vec<MemberSpec> {
    let m = |id: &str, name: &str, region: &str, roles: Vec<Role>, power| MemberSpec {
        id: id.into(),
        name: name.into(),
        region: region.into(),
        roles,
        voting_power: power,
    };
    let credit = |d: &str| Role::CreditAuthority(d.into());
    let trace = |d: &str| Role::TraceAuthority(d.into());
    vec![
        m(
            "sh-credit-centre",
            "上海市公共信用信息服务中心 Shanghai Public Credit Information Service Centre",
            "310000",
            vec![Role::Validator, credit("general")],
            1,
        ),
        m(
            "sh-market",
            "上海市市场监督管理局 Shanghai Administration for Market Regulation",
            "310000",
            vec![
                Role::Validator,
                Role::Registrar,
                credit("market"),
                trace("food"),
            ],
            1,
        ),
        m(
            "sh-drug",
            "上海市药品监督管理局 Shanghai Medical Products Administration",
            "310000",
            vec![credit("drug"), trace("drug")],
            0,
        ),
        m(
            "sh-ndrc",
            "上海市发展和改革委员会 Shanghai Development and Reform Commission",
            "310000",
            vec![Role::Validator, credit("investment")],
            1,
        ),
        m(
            "sh-agri",
            "上海市农业农村委员会 Shanghai Agriculture and Rural Affairs Commission",
            "310000",
            vec![trace("food")],
            0,
        ),
        m(
            "js-credit",
            "江苏省信用办 Jiangsu Provincial Credit Office",
            "320000",
            vec![Role::Validator, credit("general")],
            1,
        ),
        m(
            "sh-pudong",
            "浦东新区公共信用信息服务分中心 Pudong District Credit Sub-platform",
            "310115",
            vec![Role::Observer],
            0,
        ),
    ]
}

/// Sample enterprises: (slug, name, 17-character USCC payload).
const ENTERPRISES: &[(&str, &str, &str)] = &[
    (
        "farm",
        "上海松江稻米专业合作社 Songjiang Rice Cooperative",
        "93310117MA1G0A1B2",
    ),
    (
        "processor",
        "上海申粮食品加工有限公司 Shenliang Food Processing Co.",
        "91310115MA1H0C3D4",
    ),
    (
        "retailer",
        "上海联华生鲜超市有限公司 Lianhua Fresh Supermarket Co.",
        "91310104MA1J0E5F6",
    ),
    (
        "pharma",
        "上海华康制药有限公司 Huakang Pharmaceutical Co.",
        "91310000MA1K0G7H8",
    ),
    (
        "distributor",
        "上海医药分销有限公司 Shanghai Pharma Distribution Co.",
        "91310106MA1L0J9K1",
    ),
    (
        "hospital",
        "上海市第九人民医院 Shanghai Ninth People's Hospital",
        "12310000MB2C0L3M4",
    ),
    (
        "builder",
        "上海浦江建设工程有限公司 Pujiang Construction Co.",
        "91310112MA1N0P5Q6",
    ),
];

/// What a new user needs to try the devnet: written to `DIR/sample.json`.
#[derive(Serialize, Deserialize)]
pub struct SampleManifest {
    pub api: String,
    pub chain_id: String,
    pub genesis_hash: String,
    pub enterprises: Vec<SampleEnterprise>,
    pub batches: Vec<String>,
    pub records: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
pub struct SampleEnterprise {
    pub slug: String,
    pub name: String,
    pub uscc: String,
    pub key_file: String,
}

pub fn enterprise_key_path(dir: &Path, slug: &str) -> PathBuf {
    dir.join("keys")
        .join("enterprises")
        .join(format!("{slug}.pem"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Creates the folder's genesis and keys on first use; loads the genesis after.
pub fn prepare(dir: &Path) -> Result<Genesis> {
    if genesis_path(dir).exists() {
        return Ok(Genesis::load(&genesis_path(dir))?);
    }
    let policy = Policy::default();
    let g = scaffold(dir, "xinlian-devnet", now_ms(), policy, &members())?;
    std::fs::create_dir_all(dir.join("keys").join("enterprises"))?;
    for (slug, _, _) in ENTERPRISES {
        keys::write_pem(&enterprise_key_path(dir, slug), &keys::generate()?)?;
    }
    Ok(g)
}

/// The devnet's node processes; dropping it stops them.
pub struct Children(pub Vec<(String, std::process::Child)>);

impl Children {
    /// Closes each node's stdin (it exits, flushing its store), waits up to 10 s,
    /// then kills what is left.
    pub fn stop(&mut self) {
        for (_, c) in &mut self.0 {
            drop(c.stdin.take());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for (_, c) in &mut self.0 {
            while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `exe run` (an `xinlian-node`) for member `id` of the consortium scaffolded in
/// `dir`, dialling `peers`; returns the child and its announced API URL and p2p address.
/// Its log goes to `dir/nodes/ID.log`; it exits when its stdin closes.
pub fn spawn_node(
    exe: &Path,
    dir: &Path,
    id: &str,
    api_port: u16,
    p2p_port: u16,
    peers: &[String],
) -> Result<(std::process::Child, String, String)> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let nodes = dir.join("nodes");
    std::fs::create_dir_all(&nodes)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(nodes.join(format!("{id}.log")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--genesis")
        .arg(genesis_path(dir))
        .arg("--key")
        .arg(node_key_path(dir, id))
        .arg("--data")
        .arg(nodes.join(id))
        .arg("--listen")
        .arg(format!("127.0.0.1:{api_port}"))
        .arg("--p2p-listen")
        .arg(format!("/ip4/127.0.0.1/tcp/{p2p_port}"))
        .arg("--exit-with-stdin");
    for p in peers {
        cmd.arg("--peer").arg(p);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting node {id}"))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(u) = line.strip_prefix("xinlian-node: API listening on ") {
                let _ = tx.send((true, u.trim().to_string()));
            } else if let Some(a) = line.strip_prefix("xinlian-node: p2p listening on ") {
                let _ = tx.send((false, a.trim().to_string()));
            }
        }
    });
    let (mut api, mut p2p) = (None, None);
    while api.is_none() || p2p.is_none() {
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok((true, u)) => api = Some(u),
            Ok((false, a)) => p2p = Some(a),
            Err(_) => {
                let _ = child.kill();
                anyhow::bail!(
                    "node {id} did not start; see {}",
                    nodes.join(format!("{id}.log")).display()
                );
            }
        }
    }
    Ok((child, api.expect("set"), p2p.expect("set")))
}

pub fn devnet(dir: &Path, port: u16, sample: bool) -> Result<()> {
    let genesis = prepare(dir)?;
    let runners: Vec<(String, bool)> = genesis
        .members
        .iter()
        .filter(|m| m.node_key.is_some())
        .map(|m| (m.id.clone(), m.has(&Role::Validator)))
        .collect();
    let exe = std::env::current_exe().context("locating xinlian-node")?;
    let mut children = Children(Vec::new());
    let (mut apis, mut p2ps) = (Vec::new(), Vec::new());
    for (i, (id, _)) in runners.iter().enumerate() {
        let offset = |base: u16| if port == 0 { 0 } else { base + i as u16 };
        let (child, api, p2p) = spawn_node(
            &exe,
            dir,
            id,
            offset(port),
            offset(port.saturating_add(100)),
            &p2ps,
        )
        .with_context(|| format!("(is a devnet already running on port {port}? try --port)"))?;
        children.0.push((id.clone(), child));
        apis.push(api);
        p2ps.push(p2p);
    }
    let api = apis[0].clone();
    // The same announcement as `xinlian-node run`, for scripts and tests.
    println!("xinlian-node: API listening on {api}");
    if sample {
        let m = load_sample(dir, &api, &genesis)?;
        println!(
            "sample data: {} enterprises, {} batches, {} records (see {})",
            m.enterprises.len(),
            m.batches.len(),
            m.records.len(),
            dir.join("sample.json").display()
        );
    }
    let validators = runners.iter().filter(|(_, v)| *v).count();
    println!(
        "xinlian devnet: {validators} validators and {} observer(s) on 127.0.0.1",
        runners.len() - validators
    );
    for ((id, v), u) in runners.iter().zip(&apis) {
        println!(
            "  {id:<18} {:<9} API {u}",
            if *v { "validator" } else { "observer" }
        );
    }
    println!(
        "genesis: {}   keys: {}   data and logs: {}",
        genesis_path(dir).display(),
        dir.join("keys").display(),
        dir.join("nodes").display()
    );
    println!("try: curl {api}/v1/status    stop: Ctrl-C");
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let exited = loop {
        if stop_rx
            .recv_timeout(std::time::Duration::from_millis(250))
            .is_ok()
        {
            break None;
        }
        if let Some(why) = children.0.iter_mut().find_map(|(id, c)| {
            c.try_wait()
                .ok()
                .flatten()
                .map(|status| format!("node {id} exited ({status})"))
        }) {
            break Some(why);
        }
    };
    children.stop();
    match exited {
        Some(why) => anyhow::bail!("{why}; see {}", dir.join("nodes").display()),
        None => Ok(()),
    }
}

fn wait_ready(client: &NodeClient) -> Result<xinlian_client::api::Status> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match client.status() {
            Ok(s) => return Ok(s),
            Err(e) if std::time::Instant::now() > deadline => {
                return Err(e).context("node did not come up");
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

struct Loader<'a> {
    client: NodeClient,
    chain: xinlian_genesis::Hash32,
    dir: &'a Path,
    records: Vec<(String, String)>,
    last: Option<RecordId>,
}

impl Loader<'_> {
    fn agency(&self, id: &str) -> Result<RecordSigner> {
        Ok(RecordSigner {
            key: keys::read_pem(&signing_key_path(self.dir, id))?,
            chain: self.chain,
        })
    }
    fn enterprise(&self, slug: &str) -> Result<RecordSigner> {
        Ok(RecordSigner {
            key: keys::read_pem(&enterprise_key_path(self.dir, slug))?,
            chain: self.chain,
        })
    }
    fn put(
        &mut self,
        label: &str,
        signer: &RecordSigner,
        body: impl Into<Body>,
    ) -> Result<RecordId> {
        let rec = signer.sign(body);
        let id = self
            .client
            .submit(&rec)
            .with_context(|| format!("sample record '{label}'"))?
            .id;
        self.records.push((label.to_string(), id.to_hex()));
        self.last = Some(id);
        Ok(id)
    }
}

fn uscc(slug: &str) -> Uscc {
    let (_, _, payload) = ENTERPRISES
        .iter()
        .find(|(s, _, _)| *s == slug)
        .expect("known sample enterprise");
    Uscc::with_check(payload).expect("sample payloads are in the USCC alphabet")
}

fn gtin(payload: &str) -> String {
    format!("{payload}{}", gtin_check_digit(payload))
}

fn load_sample(dir: &Path, api: &str, genesis: &Genesis) -> Result<SampleManifest> {
    let client = NodeClient::new(api);
    let status = wait_ready(&client)?;
    let manifest_path = dir.join("sample.json");
    if status.height > 0 && manifest_path.exists() {
        return Ok(serde_json::from_str(&std::fs::read_to_string(
            &manifest_path,
        )?)?);
    }
    let mut l = Loader {
        client,
        chain: genesis.hash(),
        dir,
        records: Vec::new(),
        last: None,
    };
    let market = l.agency("sh-market")?;
    let drug = l.agency("sh-drug")?;
    let ndrc = l.agency("sh-ndrc")?;
    let agri = l.agency("sh-agri")?;
    let mut enterprises = Vec::new();
    for (slug, name, _) in ENTERPRISES {
        let key: SigningKey = keys::read_pem(&enterprise_key_path(dir, slug))?;
        l.put(
            &format!("register {slug}"),
            &market,
            RegisterEntity {
                uscc: uscc(slug),
                name: name.to_string(),
                key: keys::public_key(&key),
                check_override: None,
            },
        )?;
        enterprises.push(SampleEnterprise {
            slug: slug.to_string(),
            name: name.to_string(),
            uscc: uscc(slug).to_string(),
            key_file: enterprise_key_path(dir, slug).display().to_string(),
        });
    }

    let today = Date::of_ms_beijing(now_ms());
    let ago = |days: i32| Date(today.0 - days);
    let commitment = |slug: &str,
                      kind,
                      agency: &str,
                      domain: &str,
                      matter: &str,
                      date: Date,
                      deadline: Date| {
        Commitment {
        subject: uscc(slug),
        kind,
        matter: matter.into(),
        legal_basis: "《上海市社会信用条例》第三十一条 Shanghai Social Credit Regulations, art. 31".into(),
        template_version: "SH-CC-2026-01".into(),
        accepting_agency: agency.into(),
        domain: domain.into(),
        content: Content::Text("所提交材料真实有效；近三年无违法违规记录；接受核查，虚假承诺自愿承担责任并同意公开。Materials are true; no violations in three years; accepts inspection, liability and publication.".into()),
        date,
        deadline,
        disclosure: Disclosure::Public,
        publication_consent: true,
    }
    };
    let outcome = |c: RecordId, verdict, date: Date, doc: &str| Outcome {
        commitment: c,
        verdict,
        method: "现场核查 on-site verification".into(),
        evidence: Some(xinlian_genesis::canonical::sha256(doc.as_bytes())),
        document: doc.into(),
        date,
    };

    // Credit: every outcome, a repaired breach, a serious breach on the list, a reward.
    let builder = l.enterprise("builder")?;
    let c1 = l.put(
        "builder investment commitment",
        &builder,
        commitment(
            "builder",
            CommitmentKind::InvestmentProject,
            "sh-ndrc",
            "investment",
            "浦东新区物流园区项目 Pudong logistics park project",
            ago(120),
            ago(30),
        ),
    )?;
    l.put(
        "builder outcome: fulfilled",
        &ndrc,
        outcome(c1, Verdict::Fulfilled, ago(20), "沪发改核〔2026〕88号"),
    )?;
    let retailer = l.enterprise("retailer")?;
    let c2 = l.put(
        "retailer licence commitment",
        &retailer,
        commitment(
            "retailer",
            CommitmentKind::ApprovalSubstitute,
            "sh-market",
            "market",
            "食品经营许可证 food business licence",
            ago(400),
            ago(250),
        ),
    )?;
    let o2 = l.put(
        "retailer outcome: general breach",
        &market,
        outcome(
            c2,
            Verdict::Breached(Severity::General),
            ago(200),
            "沪市监罚〔2026〕12号",
        ),
    )?;
    let a2 = l.put(
        "retailer repair application",
        &retailer,
        RepairApplication {
            outcome: o2,
            pledge: Content::Text(
                "已完成整改并作出信用修复承诺 rectified; repair commitment made".into(),
            ),
            evidence: vec![xinlian_genesis::canonical::sha256(b"rectification report")],
            date: ago(10),
        },
    )?;
    l.put(
        "retailer repair approved",
        &market,
        RepairDecision {
            application: a2,
            approved: true,
            reason: "整改到位 rectification verified".into(),
            date: ago(5),
        },
    )?;
    let processor = l.enterprise("processor")?;
    let c3 = l.put(
        "processor licence commitment",
        &processor,
        commitment(
            "processor",
            CommitmentKind::ApprovalSubstitute,
            "sh-market",
            "market",
            "食品生产许可证 food production licence",
            ago(90),
            ago(40),
        ),
    )?;
    let o3 = l.put(
        "processor outcome: serious breach",
        &market,
        outcome(
            c3,
            Verdict::Breached(Severity::Serious),
            ago(30),
            "沪市监罚〔2026〕31号",
        ),
    )?;
    l.put(
        "processor on serious-dishonesty list",
        &market,
        ListMeasure {
            subject: uscc("processor"),
            list: ListKind::SeriousDishonesty,
            action: ListAction::Add,
            domain: "market".into(),
            basis: vec![o3],
            reason: "虚假承诺 false commitment".into(),
            date: ago(25),
        },
    )?;
    let farm = l.enterprise("farm")?;
    let c4 = l.put(
        "farm self-discipline commitment",
        &farm,
        commitment(
            "farm",
            CommitmentKind::IndustrySelfDiscipline,
            "sh-market",
            "market",
            "稻米行业自律公约 rice industry self-discipline pact",
            ago(60),
            ago(15),
        ),
    )?;
    l.put(
        "farm outcome: not verifiable",
        &market,
        outcome(c4, Verdict::NotVerifiable, ago(10), "沪市监核〔2026〕7号"),
    )?;
    let distributor = l.enterprise("distributor")?;
    l.put(
        "distributor public commitment (pending)",
        &distributor,
        commitment(
            "distributor",
            CommitmentKind::VoluntaryPublic,
            "sh-drug",
            "drug",
            "药品经营质量管理规范 GSP compliance",
            ago(5),
            today.plus_days(90),
        ),
    )?;
    let pharma = l.enterprise("pharma")?;
    let c6 = l.put(
        "pharma licence commitment",
        &pharma,
        commitment(
            "pharma",
            CommitmentKind::ApprovalSubstitute,
            "sh-drug",
            "drug",
            "药品生产许可证 drug manufacturing licence",
            ago(200),
            ago(100),
        ),
    )?;
    let o6 = l.put(
        "pharma outcome: fulfilled",
        &drug,
        outcome(c6, Verdict::Fulfilled, ago(90), "沪药监核〔2026〕5号"),
    )?;
    l.put(
        "pharma on reward list",
        &drug,
        ListMeasure {
            subject: uscc("pharma"),
            list: ListKind::Reward,
            action: ListAction::Add,
            domain: "drug".into(),
            basis: vec![o6],
            reason: "守信激励 A-grade compliance".into(),
            date: ago(80),
        },
    )?;

    // Food: farm → processor → retailer, inspected, sold.
    let t = |days_ago: i64, hour: i64| EventTime {
        unix_ms: now_ms() - days_ago * 86_400_000 + hour * 3_600_000,
        offset_minutes: 480,
    };
    let kg = |amount| Quantity {
        amount,
        uom: "KGM".into(),
    };
    let pcs = |amount| Quantity {
        amount,
        uom: "H87".into(),
    };
    let rice = "rice-2026-sj-001";
    let pack = "rice-pack-2026-001";
    l.put(
        "farm commissions rice",
        &farm,
        Commission {
            batch: rice.into(),
            domain: "food".into(),
            product: Product {
                name: "松江大米 Songjiang rice (paddy)".into(),
                gtin: None,
                drug_code: None,
            },
            lot: "SJ-2026-10".into(),
            quantity: kg(10_000),
            origin: "urn:xinlian:loc:songjiang-field-07".into(),
            time: t(20, 0),
        },
    )?;
    l.put(
        "agriculture inspects rice",
        &agri,
        Inspect {
            batch: rice.into(),
            result: InspectionResult::Pass,
            standard: "GB 2763-2021 pesticide residues".into(),
            report: Some(xinlian_genesis::canonical::sha256(
                b"lab report 2026-SJ-0457",
            )),
            location: "urn:xinlian:loc:songjiang-field-07".into(),
            time: t(19, 0),
        },
    )?;
    let s1 = l.put(
        "farm ships rice to processor",
        &farm,
        Ship {
            batch: rice.into(),
            quantity: kg(6_000),
            to: uscc("processor"),
            from_location: "urn:xinlian:loc:songjiang-field-07".into(),
            to_location: "urn:xinlian:loc:shenliang-plant".into(),
            time: t(18, 0),
        },
    )?;
    l.put(
        "processor receives rice",
        &processor,
        Receive {
            shipment: s1,
            location: "urn:xinlian:loc:shenliang-plant".into(),
            time: t(18, 4),
        },
    )?;
    l.put(
        "processor packs rice",
        &processor,
        Transform {
            inputs: vec![BatchAmount {
                batch: rice.into(),
                quantity: kg(6_000),
            }],
            outputs: vec![NewBatch {
                batch: pack.into(),
                domain: "food".into(),
                product: Product {
                    name: "松江大米 5 kg bag".into(),
                    gtin: Some(gtin("690123456789")),
                    drug_code: None,
                },
                lot: "SL-2026-1101".into(),
                quantity: pcs(1_200),
            }],
            location: "urn:xinlian:loc:shenliang-plant".into(),
            time: t(15, 0),
        },
    )?;
    let s2 = l.put(
        "processor ships bags to retailer",
        &processor,
        Ship {
            batch: pack.into(),
            quantity: pcs(800),
            to: uscc("retailer"),
            from_location: "urn:xinlian:loc:shenliang-plant".into(),
            to_location: "urn:xinlian:loc:lianhua-store-112".into(),
            time: t(12, 0),
        },
    )?;
    l.put(
        "retailer receives bags",
        &retailer,
        Receive {
            shipment: s2,
            location: "urn:xinlian:loc:lianhua-store-112".into(),
            time: t(12, 3),
        },
    )?;
    l.put(
        "market supervision inspects bags",
        &market,
        Inspect {
            batch: pack.into(),
            result: InspectionResult::Pass,
            standard: "GB 1354-2018 rice".into(),
            report: None,
            location: "urn:xinlian:loc:lianhua-store-112".into(),
            time: t(10, 0),
        },
    )?;
    l.put(
        "retailer sells bags",
        &retailer,
        Sell {
            batch: pack.into(),
            quantity: pcs(50),
            kind: SaleKind::RetailSold,
            location: "urn:xinlian:loc:lianhua-store-112".into(),
            time: t(9, 0),
        },
    )?;

    // Drug: manufacturer → distributor → hospital, dispensed; a second lot recalled.
    let hospital = l.enterprise("hospital")?;
    let amox = |lot: &str| Product {
        name: format!("阿莫西林胶囊 amoxicillin capsules 0.25 g, lot {lot}"),
        gtin: Some(gtin("0690123400001")),
        drug_code: Some("81234560000000000001".into()),
    };
    let lot1 = "amox-2026-L001";
    let lot2 = "amox-2026-L002";
    l.put(
        "pharma commissions lot 1",
        &pharma,
        Commission {
            batch: lot1.into(),
            domain: "drug".into(),
            product: amox("L001"),
            lot: "L001".into(),
            quantity: pcs(5_000),
            origin: "urn:xinlian:loc:huakang-plant".into(),
            time: t(30, 0),
        },
    )?;
    l.put(
        "drug administration inspects lot 1",
        &drug,
        Inspect {
            batch: lot1.into(),
            result: InspectionResult::Pass,
            standard: "中国药典 2025 Chinese Pharmacopoeia".into(),
            report: None,
            location: "urn:xinlian:loc:huakang-plant".into(),
            time: t(29, 0),
        },
    )?;
    let s3 = l.put(
        "pharma ships lot 1 to distributor",
        &pharma,
        Ship {
            batch: lot1.into(),
            quantity: pcs(2_000),
            to: uscc("distributor"),
            from_location: "urn:xinlian:loc:huakang-plant".into(),
            to_location: "urn:xinlian:loc:sp-dc-minhang".into(),
            time: t(25, 0),
        },
    )?;
    l.put(
        "distributor receives lot 1",
        &distributor,
        Receive {
            shipment: s3,
            location: "urn:xinlian:loc:sp-dc-minhang".into(),
            time: t(25, 2),
        },
    )?;
    let s4 = l.put(
        "distributor ships lot 1 to hospital",
        &distributor,
        Ship {
            batch: lot1.into(),
            quantity: pcs(300),
            to: uscc("hospital"),
            from_location: "urn:xinlian:loc:sp-dc-minhang".into(),
            to_location: "urn:xinlian:loc:ninth-hospital-pharmacy".into(),
            time: t(20, 0),
        },
    )?;
    l.put(
        "hospital receives lot 1",
        &hospital,
        Receive {
            shipment: s4,
            location: "urn:xinlian:loc:ninth-hospital-pharmacy".into(),
            time: t(20, 1),
        },
    )?;
    l.put(
        "hospital dispenses lot 1",
        &hospital,
        Sell {
            batch: lot1.into(),
            quantity: pcs(20),
            kind: SaleKind::Dispensed,
            location: "urn:xinlian:loc:ninth-hospital-pharmacy".into(),
            time: t(19, 0),
        },
    )?;
    l.put(
        "pharma commissions lot 2",
        &pharma,
        Commission {
            batch: lot2.into(),
            domain: "drug".into(),
            product: amox("L002"),
            lot: "L002".into(),
            quantity: pcs(3_000),
            origin: "urn:xinlian:loc:huakang-plant".into(),
            time: t(14, 0),
        },
    )?;
    let s5 = l.put(
        "pharma ships lot 2 to distributor",
        &pharma,
        Ship {
            batch: lot2.into(),
            quantity: pcs(1_000),
            to: uscc("distributor"),
            from_location: "urn:xinlian:loc:huakang-plant".into(),
            to_location: "urn:xinlian:loc:sp-dc-minhang".into(),
            time: t(12, 0),
        },
    )?;
    l.put(
        "distributor receives lot 2",
        &distributor,
        Receive {
            shipment: s5,
            location: "urn:xinlian:loc:sp-dc-minhang".into(),
            time: t(12, 2),
        },
    )?;
    l.put(
        "drug administration inspects lot 2: fail",
        &drug,
        Inspect {
            batch: lot2.into(),
            result: InspectionResult::Fail,
            standard: "中国药典 2025 dissolution".into(),
            report: None,
            location: "urn:xinlian:loc:sp-dc-minhang".into(),
            time: t(6, 0),
        },
    )?;
    l.put(
        "drug administration recalls lot 2",
        &drug,
        Recall {
            batch: lot2.into(),
            reason: "溶出度不合格 dissolution out of specification".into(),
            time: t(5, 0),
        },
    )?;

    let last = l.last.expect("sample data has records");
    l.client
        .record(&last, 20_000)
        .context("waiting for the sample data to be final")?;
    let manifest = SampleManifest {
        api: api.to_string(),
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash().to_hex(),
        enterprises,
        batches: vec![rice.into(), pack.into(), lot1.into(), lot2.into()],
        records: l.records,
    };
    // Write then rename: readers never see a half-written manifest.
    let tmp = manifest_path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&manifest)?)?;
    std::fs::rename(&tmp, &manifest_path)?;
    Ok(manifest)
}
