// heed benchmark peer: node-smpp as a sending ESME, to compare with heed's client against the
// same SMSC in the same run. Usage: node throughput.js --port PORT --messages N --window W
// Keeps W UCS2 flash submit_sm outstanding until N are answered, then prints one JSON line
// {"messages":N,"window":W,"seconds":S,"failed":F} and exits.
'use strict';
const smpp = require('smpp');

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : dflt; };
const port = opt('--port', 2775), total = opt('--messages', 10000), window = opt('--window', 10);
const body = Buffer.from('您的保单将于2026年12月31日到期，请及时续保。', 'utf16le').swap16();

const session = smpp.connect({ url: `smpp://127.0.0.1:${port}` });
session.on('error', (e) => { console.error(e.message); process.exit(1); });
session.bind_transceiver({ system_id: 'node', password: '' }, (r) => {
  if (r.command_status !== 0) { console.error('bind refused', r.command_status); process.exit(1); }
  let issued = 0, answered = 0, failed = 0;
  const began = process.hrtime.bigint();
  const one = () => {
    if (issued === total) return;
    issued++;
    session.submit_sm({
      source_addr: '95500', destination_addr: '8613800000000', data_coding: 0x18, short_message: body,
    }, (resp) => {
      if (resp.command_status !== 0) failed++;
      answered++;
      if (answered < total) { one(); return; }
      const seconds = Number(process.hrtime.bigint() - began) / 1e9;
      process.stdout.write(JSON.stringify({ messages: total, window, seconds, failed }) + '\n');
      session.unbind({}, () => process.exit(0));
    });
  };
  for (let i = 0; i < window; i++) one();
});
