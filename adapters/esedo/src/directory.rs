//! The ЕСЭДО participants directory (НСИ `ENSI_SeGetDataGetItems`, nsi/*.xsd): parsing the
//! GetDataGetItems response's `Items/Item` into participants, an in-memory [`Directory`] saved and
//! loaded atomically as JSON, and [`sync_participants`] fetching it through ШЭП.
use std::path::Path;

use qaqpa_shep::xml::{self, XmlLimits, XmlWriter};
use qaqpa_shep::{
    ClientConfig, EnvelopeError, MessageData, SenderInfo, SyncChannelClient, SyncRequest,
};
use serde::{Deserialize, Serialize};

use crate::settings::EsedoSettings;

/// Namespace of GetDataGetItems request/response.
pub const NS_GETDATA: &str = "http://nitec.kz/unidic/ws/getdata";
/// Namespace of the organisations dictionary items (nsi_org.xsd).
pub const NS_ITEMS: &str = "http://nitec.kz/unidic/items";

/// One ЕСЭДО participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Participant id (`Id`).
    pub id: i64,
    /// BIN, when the directory's `code` is a 12-digit number (nsi_org.xsd has no BIN field).
    pub bin: Option<String>,
    pub name_ru: String,
    pub name_kz: String,
    pub abbr_ru: String,
    pub abbr_kz: String,
    /// `code` as the directory gives it.
    pub code: String,
    /// Parent participant id (`Parent`, 0 for none).
    pub parent: i64,
    /// Connected to ЕСЭДО, ready, and not marked for deletion.
    pub active: bool,
}

/// The directory, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub participants: Vec<Participant>,
    /// When it was last synchronised (RFC 3339).
    pub synced_at: Option<String>,
}

impl Directory {
    pub fn new(participants: Vec<Participant>) -> Self {
        Self {
            participants,
            synced_at: None,
        }
    }

    pub fn get(&self, id: i64) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    /// Case-insensitive substring on names and abbreviations; exact on id and BIN.
    pub fn search(&self, q: &str) -> Vec<&Participant> {
        let q = q.trim();
        if q.is_empty() {
            return Vec::new();
        }
        let lower = q.to_lowercase();
        self.participants
            .iter()
            .filter(|p| {
                p.id.to_string() == q
                    || p.bin.as_deref() == Some(q)
                    || [&p.name_ru, &p.name_kz, &p.abbr_ru, &p.abbr_kz]
                        .iter()
                        .any(|n| n.to_lowercase().contains(&lower))
            })
            .collect()
    }

    /// Saves as JSON atomically (a temporary file in the same directory, then a rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    pub fn load(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}

fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    node.children()
        .find(|c| c.has_tag_name((NS_ITEMS, name)))
        .map(|c| c.text().unwrap_or("").trim().to_owned())
}

/// Participants in an `Items` document (nsi_org.xsd).
pub fn parse_items(text: &str, limits: &XmlLimits) -> Result<Vec<Participant>, EnvelopeError> {
    let doc = xml::parse(text, limits)?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_ITEMS, "Items")) {
        return Err(xml::schema_error(root, "Data", "expected Items"));
    }
    let mut out = Vec::new();
    for item in root
        .children()
        .filter(|c| c.has_tag_name((NS_ITEMS, "Item")))
    {
        let req = |name: &str| {
            child_text(item, name)
                .ok_or_else(|| xml::schema_error(item, "Items/Item", &format!("missing {name}")))
        };
        let id = req("Id")?
            .parse::<i64>()
            .map_err(|_| xml::schema_error(item, "Items/Item/Id", "not an integer"))?;
        let code = child_text(item, "code").unwrap_or_default();
        let yes = |v: Option<String>| {
            v.is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true" | "да" | "yes"))
        };
        let deleted = child_text(item, "IsMarkedToDelete").is_some_and(|v| v == "true" || v == "1");
        out.push(Participant {
            id,
            bin: (code.len() == 12 && code.bytes().all(|b| b.is_ascii_digit()))
                .then(|| code.clone()),
            name_ru: req("name_ru")?,
            name_kz: child_text(item, "name_kz").unwrap_or_default(),
            abbr_ru: child_text(item, "abbr_ru").unwrap_or_default(),
            abbr_kz: child_text(item, "abbr_kz").unwrap_or_default(),
            parent: child_text(item, "Parent")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            active: !deleted
                && yes(child_text(item, "isEsedo"))
                && yes(child_text(item, "isReady")),
            code,
        });
    }
    Ok(out)
}

/// The GetDataGetItems `Request` for participants with an id above `after` (ascending).
pub fn items_request(login: &str, password: &str, entity: &str, after: i64) -> String {
    let mut w = XmlWriter::new();
    w.start("Request");
    w.attr("xmlns", NS_GETDATA);
    w.leaf("Login", login);
    w.leaf("Password", password);
    w.leaf("EntityName", entity);
    w.leaf("Filter", &format!("Id > {after}"));
    w.start("SortRequisites");
    w.start("Requisite");
    w.leaf("Name", "Id");
    w.leaf("Direction", "Ascending");
    w.end();
    w.end();
    w.end();
    w.finish()
}

/// Reads the `Response`: the items of a Success, or the directory's error.
pub fn parse_response(text: &str, limits: &XmlLimits) -> Result<Vec<Participant>, String> {
    let doc = xml::parse(text, limits).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_GETDATA, "Response")) {
        return Err("expected a GetDataGetItems Response".into());
    }
    let child = |name: &str| root.children().find(|c| c.has_tag_name((NS_GETDATA, name)));
    let result = child("ProcessingResult")
        .and_then(|n| n.text())
        .unwrap_or("")
        .trim()
        .to_owned();
    if result != "Success" {
        let info = child("ErrorInfo")
            .map(|n| {
                n.descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        return Err(format!("the directory answered {result}: {info}"));
    }
    let Some(data) = child("ResultData")
        .and_then(|r| r.children().find(|c| c.has_tag_name((NS_GETDATA, "Data"))))
    else {
        return Ok(Vec::new());
    };
    match data.children().find(|c| c.is_element()) {
        Some(items) => {
            parse_items(&xml::serialize_element(items), limits).map_err(|e| e.to_string())
        }
        None => {
            // The items may come as escaped text (mixed content).
            let t = data.text().unwrap_or("").trim();
            if t.is_empty() {
                Ok(Vec::new())
            } else {
                parse_items(t, limits).map_err(|e| e.to_string())
            }
        }
    }
}

/// Fetches the whole directory through ШЭП page by page (`Filter` "Id > last", ascending, until
/// an empty page); `progress(done, total)` after each page (`total` unknown: `None`). Each
/// page's exchange is itemised on `meter`, for the exchange journal.
pub async fn sync_participants(
    client: &SyncChannelClient,
    settings: &EsedoSettings,
    meter: &qaqpa_core::ExchangeMeter,
    mut progress: impl FnMut(usize, Option<usize>),
) -> Result<Directory, String> {
    let password = settings
        .password()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let mut all: Vec<Participant> = Vec::new();
    let mut after = 0i64;
    for _page in 0..10_000 {
        let body = items_request(&settings.sender_id, &password, &settings.nsi_entity, after);
        let data = MessageData::xml(body, None).map_err(|e| e.to_string())?;
        let request = SyncRequest::new(
            settings.nsi_service_id.clone(),
            SenderInfo::new(
                settings.sender_id.clone(),
                settings.password().ok().flatten(),
            ),
            Some(data),
        );
        let response = client
            .send_metered(&request, meter)
            .await
            .map_err(|e| e.to_string())?;
        let text = response
            .data
            .as_ref()
            .map(|d| d.as_text().to_owned())
            .unwrap_or_default();
        let page = parse_response(&text, &XmlLimits::default())?;
        let Some(max) = page.iter().map(|p| p.id).max() else {
            break;
        };
        if max <= after {
            return Err(format!(
                "the directory repeated ids up to {after}; stopping"
            ));
        }
        after = max;
        all.extend(page);
        progress(all.len(), None);
    }
    let mut dir = Directory::new(all);
    dir.synced_at = Some(qaqpa_shep::types::format_datetime(qaqpa_shep::types::now()));
    Ok(dir)
}

/// A client for [`sync_participants`] from the route settings.
pub fn directory_client(settings: &EsedoSettings) -> Result<SyncChannelClient, String> {
    SyncChannelClient::new(
        ClientConfig::new(settings.endpoint.clone()).with_timeout(settings.timeout()),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn items_xml() -> String {
        format!(
            "<Items xmlns=\"{NS_ITEMS}\"><Item><Id>101</Id><Parent>0</Parent><ChildsCount>0</ChildsCount>\
             <IsMarkedToDelete>false</IsMarkedToDelete><name_ru>Министерство цифрового развития</name_ru>\
             <name_kz>Цифрлық даму министрлігі</name_kz><abbr_ru>МЦРИАП</abbr_ru><abbr_kz>ЦДМ</abbr_kz>\
             <member>1</member><code>123456789021</code><isEsedo>1</isEsedo><isReady>1</isReady>\
             <ElementGUID>101</ElementGUID></Item>\
             <Item><Id>102</Id><Parent>101</Parent><ChildsCount>0</ChildsCount>\
             <IsMarkedToDelete>true</IsMarkedToDelete><name_ru>Акимат</name_ru>\
             <name_kz>Әкімдік</name_kz><abbr_ru></abbr_ru><abbr_kz></abbr_kz>\
             <member xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:nil=\"true\"/><code>AK-1</code><isEsedo>1</isEsedo><isReady>0</isReady>\
             <ElementGUID>102</ElementGUID></Item></Items>"
        )
    }

    #[test]
    fn items_parse_and_search_and_save_round_trip() {
        let list = parse_items(&items_xml(), &XmlLimits::default()).expect("parses");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].bin.as_deref(), Some("123456789021"));
        assert!(list[0].active);
        assert!(!list[1].active);
        let dir = Directory::new(list);
        assert_eq!(dir.search("цифров").len(), 1);
        assert_eq!(dir.search("ЦИФРОВ").len(), 1, "case-insensitive");
        assert_eq!(dir.search("102").len(), 1);
        assert_eq!(dir.search("10").len(), 0, "ids match exactly");
        assert_eq!(dir.search("123456789021")[0].id, 101);
        assert!(dir.get(102).is_some());
        let tmp = tempfile::tempdir().expect("dir");
        let path = tmp.path().join("participants.json");
        dir.save(&path).expect("saves");
        assert_eq!(Directory::load(&path).expect("loads"), dir);
    }
}
