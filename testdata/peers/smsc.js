// heed interop peer: node-smpp acting as the SMSC for heed's client.
// Usage: node smsc.js [--password PW]
// Listens on a free port of 127.0.0.1 and prints "listening PORT", then one JSON object per line
// for every PDU it receives, with short_message decoded by node-smpp itself. Answers submit_sm with
// a decimal message id and, when asked, a delivery receipt (TLVs and text form). Right after the
// first bind it sends one MO message, "退订" in UCS2, so the client's handler can be checked.
// query_sm for an id it gave is answered DELIVERED (final_date 2026-11-27 04:00:00 UTC), any other
// id with ESME_RQUERYFAIL (0x67).
'use strict';
const smpp = require('smpp');

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const password = opt('--password', 'secret');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const hex = (b) => Buffer.isBuffer(b) ? b.toString('hex') : '';
const ucs2 = (s) => Buffer.from(s, 'utf16le').swap16();

let lastId = 5000;
const issued = new Set();
const server = smpp.createServer((session) => {
  session.on('error', (e) => out({ event: 'error', message: e.message }));
  const onBind = (pdu) => {
    const ok = pdu.password === password;
    out({ event: pdu.command, system_id: pdu.system_id, ok });
    if (!ok) {
      session.send(pdu.response({ command_status: 0x0e }));
      return;
    }
    session.send(pdu.response({ system_id: 'NODESMSC' }));
    if (pdu.command !== 'bind_transmitter') {
      session.deliver_sm({
        source_addr: '8613800000000', destination_addr: '95500', data_coding: 0x08,
        short_message: ucs2('退订'),
      }, (resp) => out({ event: 'deliver_sm_resp', status: resp.command_status }));
    }
  };
  for (const c of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) session.on(c, onBind);
  session.on('enquire_link', (pdu) => { out({ event: 'enquire_link' }); session.send(pdu.response()); });
  session.on('unbind', (pdu) => {
    out({ event: 'unbind' });
    session.send(pdu.response(), () => session.close());
  });
  session.on('query_sm', (pdu) => {
    const known = issued.has(pdu.message_id);
    out({ event: 'query_sm', id: pdu.message_id, source: pdu.source_addr, known });
    if (!known) {
      session.send(pdu.response({ command_status: 0x67 }));
      return;
    }
    session.send(pdu.response({
      message_id: pdu.message_id, final_date: new Date(Date.UTC(2026, 10, 27, 4, 0, 0)), message_state: 2, error_code: 0,
    }));
  });
  session.on('submit_sm', (pdu) => {
    const sm = pdu.short_message || {};
    const id = String(++lastId);
    issued.add(id);
    out({
      event: 'submit_sm', id, destination: pdu.destination_addr, source: pdu.source_addr,
      data_coding: pdu.data_coding, esm_class: pdu.esm_class, registered_delivery: pdu.registered_delivery,
      text: typeof sm.message === 'string' ? sm.message : '', udh: (sm.udh || []).map(hex),
      subunit: pdu.dest_addr_subunit === undefined ? null : pdu.dest_addr_subunit,
    });
    session.send(pdu.response({ message_id: id }));
    if ((pdu.registered_delivery & 0x03) === 1) {
      const text = `id:${id} sub:001 dlvrd:001 submit date:2611270400 done date:2611270400 stat:DELIVRD err:000 text:`;
      session.deliver_sm({
        source_addr: pdu.destination_addr, destination_addr: pdu.source_addr, esm_class: 0x04,
        short_message: Buffer.from(text, 'ascii'), receipted_message_id: id, message_state: 2,
      }, (resp) => out({ event: 'receipt_resp', id, status: resp.command_status }));
    }
  });
});
server.listen(0, '127.0.0.1', () => out({ event: 'listening', port: server.address().port }));
process.on('SIGTERM', () => process.exit(0));
