//! aspera.conf parsing: any bytes give a Config or an error, never a panic, and a
//! parsed Config answers every question without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(conf) = fallback_conf::Config::parse_bytes(data) {
        for d in conf.diagnostics() {
            let _ = d.to_string();
        }
        let doc = conf.document();
        let _ = conf.server().mode();
        let _ = conf.web();
        let _ = conf.defaults();
        let groups: Vec<&str> = doc.groups.iter().map(|g| g.name.as_str()).collect();
        for u in &doc.users {
            let _ = conf.user(&u.name, &groups).required_cipher();
        }
        // What we write, we read back identically.
        let again = fallback_conf::Config::parse(&doc.to_xml()).expect("written XML parses");
        assert_eq!(again.document(), doc);
    }
});
