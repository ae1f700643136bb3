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
