// The pages' words in Chinese and English. Every key has both; the switch is kept in
// the browser (localStorage), first chosen from the browser's language.

const WORDS = {
  nav_verify: { zh: "验证文件", en: "Verify a file" },
  lang_other: { zh: "English", en: "中文" },
  footer: {
    zh: "本页用您的创世文件自行验证每个答复，不依赖提供本页的节点。",
    en: "This page checks every answer itself against your genesis file; it does not trust the node that serves it.",
  },
  verify_title: { zh: "离线验证证明包", en: "Verify a proof bundle offline" },
  verify_intro: {
    zh: "将联盟的创世文件（genesis.toml）和证明包（xinlian prove 生成的 JSON）拖到下方，或选择文件。验证完全在本页中进行，不联网。",
    en: "Drop the consortium's genesis file (genesis.toml) and a proof bundle (the JSON that xinlian prove writes) below, or choose them. The check runs entirely in this page, with no network.",
  },
  drop_here: { zh: "拖放文件到此处", en: "Drop files here" },
  genesis_file: { zh: "创世文件", en: "Genesis file" },
  bundle_file: { zh: "证明包", en: "Proof bundle" },
  not_loaded: { zh: "未加载", en: "not loaded" },
  verified: { zh: "已验证", en: "Verified" },
  not_verified: { zh: "未通过验证", en: "Not verified" },
  need_both: { zh: "请加载创世文件和证明包。", en: "Load a genesis file and a proof bundle." },
  chain: { zh: "链标识", en: "Chain id" },
  record: { zh: "记录", en: "Record" },
  kind: { zh: "类型", en: "Kind" },
  ledger_index: { zh: "账本序号", en: "Ledger index" },
  block: { zh: "区块高度", en: "Block height" },
  final_at: { zh: "最终确认于高度", en: "Final at or before height" },
  checkpoint: { zh: "检查点", en: "Checkpoint" },
  signer: { zh: "签名者", en: "Signer" },
  member: { zh: "联盟成员", en: "Consortium member" },
  enterprise: { zh: "企业", en: "Enterprise" },
  custody: { zh: "托管密钥", en: "Custody key" },
  roles: { zh: "角色", en: "roles" },
  bound_by: { zh: "密钥绑定记录", en: "bound by" },
  registrar: { zh: "登记机构", en: "registrar" },
  domain: { zh: "领域", en: "domain" },
  what_proven: {
    zh: "已核对：证书由当时有效的验证者中超过三分之二的投票权签署；记录的签名和在账本中的位置；签名者的权限。",
    en: "Checked: the certificate carries precommits of more than two thirds of the voting power in force; the record's signature and its place in the ledger; the signer's authority.",
  },
  not_found: { zh: "没有这个页面。", en: "No such page." },
  nav_home: { zh: "查询", en: "Look up" },
  nav_operator: { zh: "运维", en: "Operator" },
  operator_title: { zh: "节点与联盟状态", en: "Node and consortium health" },
  blocks_verified: { zh: "已验证的最近区块：", en: "recent blocks verified:" },
  this_node: { zh: "本节点", en: "This node" },
  height: { zh: "高度", en: "Height" },
  round: { zh: "轮次", en: "Round" },
  mempool: { zh: "待打包记录", en: "Mempool" },
  timeouts: { zh: "超时次数", en: "Timeouts" },
  syncing: { zh: "同步", en: "Sync" },
  in_step: { zh: "已同步", en: "in step" },
  reported: { zh: "以上为本节点自报的运行数据，未经验证。", en: "The figures above are this node's own reports, not verified." },
  members_heights: { zh: "各成员节点高度（其自行宣布，未经验证）", en: "Members' heights (as their nodes announced them, not verified)" },
  latest_signers: { zh: "最新证书的签名者，高度", en: "Who signed the latest certificate, height" },
  validator: { zh: "验证者", en: "Validator" },
  power: { zh: "投票权", en: "Power" },
  signed: { zh: "已签名", en: "Signed" },
  recent_blocks: { zh: "最近区块（证书已验证）", en: "Recent blocks (certificates verified)" },
  records: { zh: "记录数", en: "Records" },
  proposer: { zh: "提议者", en: "Proposer" },
  open_proposals: { zh: "进行中的治理提案及计票", en: "Open governance proposals and tallies" },
  proposal: { zh: "提案", en: "Proposal" },
  approve: { zh: "赞成", en: "Approve" },
  reject: { zh: "反对", en: "Reject" },
  total: { zh: "总投票权", en: "Total" },
  home_title: { zh: "信链：信用承诺与产品追溯", en: "xinlian: credit commitments and product traceability" },
  home_intro: {
    zh: "输入批次号查看其全程追溯，或输入统一社会信用代码查看企业信用。每个答复都在本页中对照创世文件验证。",
    en: "Enter a batch id to see its whole trace, or a unified social credit code to see an enterprise's credit. Every answer is verified in this page against the genesis file.",
  },
  batch_id: { zh: "批次号", en: "Batch id" },
  open: { zh: "查看", en: "Open" },
  batch: { zh: "批次", en: "Batch" },
  verifying: { zh: "正在获取并验证……", en: "Fetching and verifying…" },
  batch_missing: { zh: "答复中没有这个批次。", en: "The answer does not hold this batch." },
  lot: { zh: "批号", en: "Lot" },
  recalled_this: { zh: "召回：本批次已被召回", en: "RECALLED: this batch has been recalled" },
  recalled_upstream: { zh: "召回：上游批次已被召回：", en: "RECALL upstream: a batch it was made from has been recalled:" },
  recalled: { zh: "已召回", en: "recalled" },
  complete: { zh: "追溯完整（没有遗漏的事件）", en: "complete (no event left out)" },
  partial: { zh: "不完整，缺少", en: "partial, missing" },
  partial_recalls: { zh: "不完整：以下批次未包含，其中的召回无法排除", en: "partial: these batches are not included, and a recall among them is not ruled out" },
  stale: { zh: "注意：本答复所依据的区块早于本浏览器已验证过的高度", en: "Note: this answer rests on a block older than one this browser has already verified, at height" },
  old_header: { zh: "注意：本答复所依据的区块时间较早：", en: "Note: this answer rests on an old block, of" },
  proposals_reported: { zh: "提案及计票为本节点自报，未经验证。", en: "Proposals and tallies are this node's report, not verified." },
  no_blocks: { zh: "本节点没有可验证的区块。", en: "This node has no block to verify." },
  anchor_file: { zh: "对照您的创世文件", en: "against your genesis file" },
  anchor_label: { zh: "对照标签上的链标识", en: "against the chain id on the label" },
  anchor_node: { zh: "对照本节点提供的创世文件", en: "against the genesis this node serves" },
  anchor_node_warn: {
    zh: "注意：创世文件来自本节点本身。请将链标识与联盟公布的核对，或在“验证文件”页加载您自己的创世文件。",
    en: "Note: the genesis file came from this node itself. Compare the chain id with the one the consortium publishes, or load your own genesis file on the “Verify a file” page.",
  },
  product: { zh: "产品", en: "Product" },
  drug_code: { zh: "药品追溯码", en: "drug code" },
  made_by: { zh: "生产者", en: "Made by" },
  origin: { zh: "产地/来源", en: "Origin" },
  made_amount: { zh: "生产数量", en: "Made" },
  holders: { zh: "当前持有", en: "Held now" },
  hidden: { zh: "（数量不公开）", en: "(amount not public)" },
  in_transit: { zh: "在途", en: "in transit" },
  nobody: { zh: "无人持有", en: "nobody" },
  timeline: { zh: "时间线", en: "Timeline" },
  when: { zh: "时间", en: "When" },
  what: { zh: "事件", en: "What" },
  who: { zh: "记录者", en: "Who" },
  details: { zh: "详情", en: "Details" },
  ev_commission: { zh: "生产", en: "made" },
  ev_ship: { zh: "发货", en: "shipped" },
  ev_receive: { zh: "收货确认", en: "received" },
  ev_transform: { zh: "加工", en: "processed" },
  ev_inspect: { zh: "检验", en: "inspected" },
  ev_recall: { zh: "召回", en: "recalled" },
  ev_sell: { zh: "销售/发放", en: "sold / dispensed" },
  pass: { zh: "合格", en: "pass" },
  fail: { zh: "不合格", en: "fail" },
  transfers: { zh: "托管交接", en: "Custody transfers" },
  from: { zh: "发出方", en: "From" },
  to: { zh: "接收方", en: "To" },
  quantity: { zh: "数量", en: "Quantity" },
  shipped: { zh: "发货时间", en: "Shipped" },
  received: { zh: "确认收货", en: "Received" },
  not_acknowledged: { zh: "尚未确认", en: "not yet acknowledged" },
  no_transfers: { zh: "没有交接。", en: "No transfers." },
  inspections: { zh: "检验", en: "Inspections" },
  no_inspections: { zh: "没有检验记录。", en: "No inspections." },
  upstream: { zh: "上游（原料来源）", en: "Upstream (made from)" },
  downstream: { zh: "下游（由此制成）", en: "Downstream (made from it)" },
  recall_reach: { zh: "召回范围：当前持有者与数量", en: "Recall reach: current holders and quantities" },
  recall: { zh: "召回", en: "Recall" },
  none: { zh: "无。", en: "None." },
  download_bundle: { zh: "下载证明包（可用 xinlian verify 或“验证文件”页离线核验）", en: "Download the proof bundle (check it offline with xinlian verify or the “Verify a file” page)" },
  remembered: { zh: "此创世文件已保存在本浏览器中，批次和企业页面将以它为准。", en: "This genesis file is kept in this browser: the batch and enterprise pages verify against it." },
  forget: { zh: "忘记它", en: "Forget it" },
  batches_events: { zh: "批次 / 事件", en: "Batches / events" },
  credit_report: { zh: "企业信用报告", en: "credit report" },
  verify_report: { zh: "在“验证文件”页核验企业提供的信用报告", en: "Check a credit report the enterprise gives you on the “Verify a file” page" },
  grade_reasons: { zh: "等级依据", en: "Reasons" },
  credit_proven: {
    zh: "已核对：企业的全部信用记录（信用索引证明其一条不少），由其重放得出的概况与所证明的一致，等级按当时有效的规则计算。",
    en: "Checked: every credit record of the enterprise (the credit index proves none is left out), the profile they derive against the proven one, and the grade under the rules then in force.",
  },
  uscc: { zh: "统一社会信用代码", en: "Unified social credit code" },
  open_enterprise: { zh: "查看企业", en: "Open the enterprise" },
  records_verified: { zh: "条记录已逐条验证", en: "records verified one by one" },
  registered_by: { zh: "登记机构", en: "Registered by" },
  registered_in: { zh: "登记于", en: "Registered in" },
  commitments: { zh: "信用承诺", en: "Credit commitments" },
  matter: { zh: "事项", en: "Matter" },
  accepting_agency: { zh: "受理部门", en: "Accepting agency" },
  deadline: { zh: "履约期限", en: "Deadline" },
  status: { zh: "状态（由已验证记录得出）", en: "Status (from the verified records)" },
  outcome: { zh: "核查", en: "verified" },
  st_open: { zh: "尚无核查结果", en: "no outcome yet" },
  st_fulfilled: { zh: "已履约", en: "fulfilled" },
  st_breached_minor: { zh: "轻微失信", en: "breached (minor)" },
  st_breached_general: { zh: "一般失信", en: "breached (general)" },
  st_breached_serious: { zh: "严重失信", en: "breached (serious)" },
  st_not_verifiable: { zh: "无法核查", en: "not verifiable" },
  st_repaired: { zh: "已信用修复", en: "repaired" },
  st_repair_refused: { zh: "修复申请未通过", en: "repair refused" },
  st_repair_applied: { zh: "已申请信用修复", en: "repair applied for" },
  ck_approval_substitute: { zh: "审批替代型", en: "in place of an approval" },
  ck_voluntary_public: { zh: "主动公示型", en: "voluntary, public" },
  ck_industry_self_discipline: { zh: "行业自律型", en: "industry self-discipline" },
  ck_credit_repair: { zh: "信用修复型", en: "credit repair" },
  ck_investment_project: { zh: "投资项目型", en: "investment project" },
  lists: { zh: "守信激励与失信惩戒名单", en: "Reward and punishment lists" },
  list: { zh: "名单", en: "List" },
  action: { zh: "措施", en: "Measure" },
  date: { zh: "日期", en: "Date" },
  decided_by: { zh: "决定机构", en: "Decided by" },
  list_reward: { zh: "守信激励", en: "reward list" },
  list_serious: { zh: "严重失信主体名单", en: "serious-dishonesty list" },
  list_add: { zh: "列入", en: "added" },
  list_remove: { zh: "移出", en: "removed" },
  grade: { zh: "信用等级", en: "Credit grade" },
  grade_by_node: { zh: "本节点由完整信用记录计算的等级", en: "The grade this node computes from the complete record" },
  grade_note: {
    zh: "公众无法自行核验等级：它取决于企业的完整信用记录，而完整记录只向企业本身和联盟成员披露。企业的信用报告（xinlian credit --report）可证明其等级。",
    en: "The public cannot check the grade itself: it rests on the enterprise's complete credit record, which only the enterprise and the consortium may read. The enterprise's credit report (xinlian credit --report) proves it.",
  },
  public_note: {
    zh: "以上为公众可见的记录，逐条验证；是否有未列出的记录，公众无法核实（按披露规则，部分记录不公开）。",
    en: "These are the records the public may read, each verified; whether any is left out the public cannot check (by the disclosure rules, some records are not public).",
  },
  complete_q: { zh: "完整性", en: "Completeness" },
  open_batch: { zh: "在线查看此批次的最新追溯", en: "Open this batch's current trace" },
  print_label: { zh: "打印标签（二维码）", en: "Print the label (QR code)" },
} as const;

export type Word = keyof typeof WORDS;
export type Lang = "zh" | "en";

const STORE = "xinlian.lang";

function initial(): Lang {
  try {
    const saved = localStorage.getItem(STORE);
    if (saved === "zh" || saved === "en") return saved;
  } catch {
    // storage refused (private mode): fall through to the browser's language
  }
  return navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

let lang: Lang = initial();

export function currentLang(): Lang {
  return lang;
}

export function setLang(l: Lang): void {
  lang = l;
  try {
    localStorage.setItem(STORE, l);
  } catch {
    // kept for this page only
  }
  document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
}

export function t(w: Word): string {
  return WORDS[w][lang];
}
