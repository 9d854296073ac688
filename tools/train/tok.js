// Encode or decode text with DeepSeek-V3's tokenizer through Hugging Face's
// tokenizers library for Node (@anush008/tokenizers).
//
//   node tok.js TOKENIZER_JSON encode < strings.json > ids.json
//   node tok.js TOKENIZER_JSON decode < ids.json > strings.json
//
// Input and output are JSON arrays on stdin / stdout: for encode an array of
// strings in, an array of id arrays out; for decode the reverse. No special
// tokens are added (the caller adds BOS / EOS); decoding keeps special tokens.
// The tokenizers package is found through NODE_PATH.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');

async function main() {
    const [file, mode] = process.argv.slice(2);
    if (!file || (mode !== 'encode' && mode !== 'decode')) {
        process.stderr.write('usage: node tok.js TOKENIZER_JSON encode|decode\n');
        process.exit(2);
    }
    const tok = Tokenizer.fromFile(file);
    const input = JSON.parse(fs.readFileSync(0, 'utf8'));
    const out = [];
    const chunk = 256;
    for (let i = 0; i < input.length; i += chunk) {
        const part = input.slice(i, i + chunk);
        if (mode === 'encode') {
            const encs = await tok.encodeBatch(part, { addSpecialTokens: false });
            for (const e of encs) out.push(Array.from(e.getIds()));
        } else {
            const texts = await tok.decodeBatch(part, false);
            for (const t of texts) out.push(t);
        }
    }
    fs.writeFileSync(1, JSON.stringify(out));
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
