// node-smpp as the SMSC of heed's end-to-end test.
// Prints one JSON line per event on stdout: {"event":"listening","port":N} first, then
// {"event":"submit","id","to","from","text","data_coding"} for every submit_sm. Answers each
// submit with a decimal id and, when a receipt is asked for, a DELIVRD receipt (TLVs and text).
// Reads JSON lines on stdin: {"from","to","text"} is sent to the bound ESME as an MO deliver_sm;
// {"hold":true} makes it hold back its answers to submits (they are still printed);
// {"hold":false} answers the held ones and resumes.
'use strict';
const path = require('path');
const smpp = require(path.join(process.env.HEED_PEERS, 'node_modules', 'smpp'));
const readline = require('readline');

const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const utf16be = (s) => Buffer.from(s, 'utf16le').swap16();
let sessions = [];
let nextId = 700000;
let hold = false;
let held = [];

const decode = (pdu) => {
  const sm = pdu.short_message;
  if (sm && typeof sm.message === 'string') return sm.message;
  const raw = Buffer.isBuffer(sm) ? sm : (sm && Buffer.isBuffer(sm.message) ? sm.message : Buffer.alloc(0));
  if ((pdu.data_coding & 0x0c) === 0x08) return Buffer.from(raw).swap16().toString('utf16le');
  return raw.toString('latin1');
};

const server = smpp.createServer((session) => {
  session.on('error', () => {});
  const bind = (pdu) => { session.send(pdu.response()); sessions.push(session); };
  ['bind_transceiver', 'bind_transmitter', 'bind_receiver'].forEach((c) => session.on(c, bind));
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    sessions = sessions.filter((s) => s !== session);
    session.send(pdu.response(), () => session.close());
  });
  session.on('submit_sm', (pdu) => {
    const id = String(nextId++);
    print({ event: 'submit', id, to: pdu.destination_addr, from: pdu.source_addr, text: decode(pdu), data_coding: pdu.data_coding });
    const answer = () => {
      session.send(pdu.response({ message_id: id }));
      if ((pdu.registered_delivery & 0x03) === 1) receipt(session, pdu, id);
    };
    if (hold) held.push(answer); else answer();
  });
});

const receipt = (session, pdu, id) => {
  const stamp = '2611270400';
  session.deliver_sm({
    source_addr: pdu.destination_addr, destination_addr: pdu.source_addr, esm_class: 0x04,
    short_message: Buffer.from(`id:${id} sub:001 dlvrd:001 submit date:${stamp} done date:${stamp} stat:DELIVRD err:000 text:`, 'ascii'),
    receipted_message_id: id, message_state: 2,
  });
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const mo = JSON.parse(line);
  if (typeof mo.hold === 'boolean') {
    hold = mo.hold;
    if (!hold) { const h = held; held = []; h.forEach((f) => f()); }
    return;
  }
  for (const s of sessions) {
    s.deliver_sm({ source_addr: mo.from, destination_addr: mo.to, data_coding: 0x08, short_message: utf16be(mo.text) },
      (resp) => print({ event: 'mo_resp', status: resp.command_status }));
  }
});
server.listen(0, '127.0.0.1', () => print({ event: 'listening', port: server.address().port }));
process.on('SIGTERM', () => process.exit(0));
