// heed interop peer: node-smpp acting as an ESME against heed's simulator.
// Usage: node esme.js --port PORT --system-id ID --password PW
// Binds as a transceiver and prints "bound"; submits a Chinese UCS2 flash message (data_coding
// 0x18) and a two-part message with an 8-bit concatenation UDH, all with receipts requested; waits
// for every receipt and one MO message, sends query_sm for the first message, enquire_link, unbinds
// and waits for unbind_resp.
// Prints one JSON object per line; exits 1 on any failure or after 15 s.
'use strict';
const smpp = require('smpp');

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (why) => { out({ event: 'fail', why }); process.exit(1); };
const ucs2 = (s) => Buffer.from(s, 'utf16le').swap16();
setTimeout(() => fail('timeout'), 15000);

const flash = '您的保单将于2026年12月31日到期，请及时续保。';
const part1 = '尊敬的客户：您的车险保单将于下月到期。为避免脱保带来的风险，请在到期前登录官方应用或拨打客服热线办理续保手续，如已续保请忽略此信息。';
const part2 = '感谢您的支持，祝您生活愉快！';

const session = smpp.connect({ url: `smpp://127.0.0.1:${opt('--port')}` });
session.on('error', (e) => fail(e.message));
const ids = [];
const receipts = new Set();
let mo = false;
let finishing = false;

const finish = () => {
  if (finishing || receipts.size < 3 || !mo) return;
  finishing = true;
  session.query_sm({ message_id: ids[0], source_addr: '95500' }, (q) => out({
    event: 'query_sm_resp', status: q.command_status, id: q.message_id, state: q.message_state,
    final_date: q.final_date instanceof Date ? q.final_date.toISOString() : q.final_date,
  }));
  session.enquire_link({}, (r) => {
    out({ event: 'enquire_link_resp', status: r.command_status });
    session.unbind({}, (u) => { out({ event: 'unbind_resp', status: u.command_status }); session.close(); process.exit(0); });
  });
};

session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  const sm = pdu.short_message || {};
  const text = typeof sm.message === 'string' ? sm.message : '';
  if (pdu.esm_class & 0x04) {
    out({ event: 'receipt', id: pdu.receipted_message_id, state: pdu.message_state, text });
    receipts.add(pdu.receipted_message_id);
  } else {
    out({ event: 'mo', from: pdu.source_addr, text, data_coding: pdu.data_coding });
    mo = true;
  }
  finish();
});

session.bind_transceiver({ system_id: opt('--system-id'), password: opt('--password') }, (r) => {
  if (r.command_status !== 0) fail('bind status ' + r.command_status);
  out({ event: 'bound' });
  const submit = (o, label) => session.submit_sm(Object.assign({
    source_addr: '95500', destination_addr: '8613800000000', registered_delivery: 1,
  }, o), (resp) => {
    if (resp.command_status !== 0) fail(label + ' status ' + resp.command_status);
    ids.push(resp.message_id);
    out({ event: 'submit_sm_resp', label, id: resp.message_id });
  });
  submit({ data_coding: 0x18, short_message: ucs2(flash) }, 'flash');
  [part1, part2].forEach((p, i) => submit({
    data_coding: 0x08, esm_class: 0x40,
    short_message: { udh: Buffer.from([5, 0, 3, 0x2a, 2, i + 1]), message: ucs2(p) },
  }, 'part' + (i + 1)));
});
