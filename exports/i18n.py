"""The report's words in English, Spanish and Ukrainian, and how a language is chosen.

A small table rather than gettext catalogs: the report has a few dozen strings, and a table
keeps them reviewable side by side. Values from the log (kinds, channels, votes, pseudonyms,
amounts, hashes) are never translated, so every figure reads the same in every language.
:func:`choose_language` picks like the web page: an explicit ``lang`` if supported, otherwise
the best match of an ``Accept-Language`` header, otherwise English.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("en", "es", "uk")
DEFAULT_LANGUAGE = "en"

STRINGS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Cycle report",
        "doc_title": "Lunaria: {pool_name}, lunar cycle {cycle}",
        "doc_subject": (
            "Roll-forward, donations, grants, corrections and handovers of pool {pool} in "
            "lunar cycle {cycle}, covered by checkpoint {size} of {origin}"
        ),
        "interim": "INTERIM",
        "interim_note": (
            "Interim report: the cycle has no handover in a checkpoint yet. It covers the "
            "entries of the cycle below checkpoint size {size} and will change."
        ),
        "closed": "closed",
        "closed_note": "Closed by the handover at entry {seq}; covered by checkpoint size {size}.",
        "pool": "Pool",
        "cycle": "Lunar cycle",
        "starts": "Starts (new moon, UTC)",
        "ends": "Ends (new moon, UTC)",
        "custodian": "Custodian collective",
        "none": "none",
        "checkpoint": "Checkpoint",
        "origin": "Log origin",
        "tree_size": "Tree size",
        "root_b64": "Root hash (base64)",
        "root_hex": "Root hash (hex)",
        "signature": "Signature",
        "receipt_url": "Checkpoint URL (QR code)",
        "anchor": "Anchored on chain",
        "not_anchored": "not anchored (yet)",
        "chain_id": "Chain id",
        "contract": "Contract",
        "transaction": "Transaction",
        "block": "Block",
        "anchored_size": "Anchored tree size",
        "anchor_entry": "Anchor entry",
        "roll_forward": "Roll-forward",
        "currency": "Currency",
        "opening": "Opening",
        "donations": "+ Donations",
        "disbursements": "− Disbursements",
        "corrections": "± Corrections",
        "closing": "= Closing",
        "committed": "Committed",
        "available": "Available",
        "fast_lane": "Fast lane used / allowance",
        "statement_ok": ("Equal to the handover statement in entry {seq} (data.closed.statement)."),
        "statement_none": "No handover statement yet: the figures are computed from the entries.",
        "chart": "Donations and disbursements per day of the cycle, {currency}",
        "chart_day": "day of the cycle",
        "legend_donations": "donations",
        "legend_disbursements": "disbursements",
        "donations_title": "Donations",
        "grants_title": "Grants",
        "corrections_title": "Corrections",
        "custody_title": "Custody and handovers",
        "no_rows": "None in this cycle.",
        "count": "entries: {count}",
        "h_seq": "seq",
        "h_time": "time (UTC)",
        "h_amount": "amount",
        "h_currency": "cur",
        "h_channel": "channel",
        "h_donor": "donor (commitment or name)",
        "h_hash": "entry hash",
        "h_grant": "grant",
        "h_event": "event",
        "h_detail": "detail",
        "h_corrects": "corrects",
        "h_kind": "kind",
        "h_change": "fund change",
        "h_reason": "reason",
        "h_from": "from",
        "h_to": "to",
        "corrected_by": "corrected by {seq}",
        "ev_proposed": "proposed",
        "ev_proposed_earlier": "proposed (cycle {cycle})",
        "ev_vote": "vote",
        "ev_decided": "decided",
        "ev_disbursed": "disbursed",
        "ev_cancelled": "cancelled",
        "ev_reversed": "reversed",
        "void": "void: custody passed",
        "quorum": "quorum {quorum}",
        "fast_lane_left": "fast lane, allowance left {left} {currency}",
        "approvals": "approve: {names}",
        "rejections": "reject: {names}",
        "ev_pool_created": "pool created",
        "ev_roster": "roster set",
        "ev_opened": "handover in",
        "ev_closed": "handover out",
        "custody_detail": "carried over {carried}, committed {committed}, votes voided {voided}",
        "h_urgency": "urgency",
        "h_status": "status",
        "h_history": "recipient · purpose, then the history (time UTC, seq)",
        "proposed_by": "by {who}",
        "proposal_hash": "proposal entry hash {hash}",
        "st_open": "open",
        "st_approved": "approved",
        "st_rejected": "rejected",
        "st_disbursed": "disbursed",
        "st_cancelled": "cancelled",
        "st_reversed": "reversed",
        "signoff_title": "Sign-off",
        "signoff_intro": (
            "The outgoing custodian hands the pool over with the closing statement above; the "
            "incoming custodian takes it over. Both check the figures against the log at the "
            "checkpoint below (the steps at the end of this report) before they sign."
        ),
        "signoff_interim": (
            "The cycle has not closed: this interim report is not for signing. The report of "
            "the closed cycle will carry the handover entry to sign for."
        ),
        "signoff_handover": "Handover entry (seq {seq})",
        "signoff_outgoing": "Outgoing custodian",
        "signoff_incoming": "Incoming custodian",
        "signoff_name": "Name of the signatory",
        "signoff_signature": "Signature",
        "signoff_date": "Date",
        "verify_title": "How to verify this report",
        "verify_intro": (
            "Trust nothing here without checking it. Every figure is derived from public log "
            "entries; these steps need only the exports and the log's verifier key."
        ),
        "verify_get": "Fetch the cycle's entries with their inclusion proofs, and the key:",
        "verify_leaf": (
            "For each line, the entry hash is SHA-256(0x00 || JCS(entry)), the RFC 9162 "
            "leaf hash of the RFC 8785 canonical bytes; for these entries JCS(entry) is:"
        ),
        "verify_proof": (
            "Each inclusion proof must lead from that hash to root {root} at tree size "
            "{size} (RFC 9162 §2.1.3.2). The checkpoint is a C2SP signed note, Ed25519, key "
            "name {origin}; key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]. It must "
            "verify with the log's key. All of this in one command:"
        ),
        "verify_sums": (
            "Re-derive the roll-forward: opening = data.closed.statement of entry {opening} "
            "(zero for a pool_created entry); donations = sum of data.amount of "
            "donation_recorded; disbursements = sum of data.amount of grant_disbursed; "
            "corrections = sum of data.fund_change of correction; committed and available = "
            "opening + the data.postings to {pool}:committed and {pool}:available. "
            "Amounts are minor units."
        ),
        "verify_statement": "It must equal data.closed.statement of entry {closing}.",
        "verify_whole": "The whole log and its history (consistency of every checkpoint):",
        "verify_anchor": (
            "On chain {chain_id}, the LedgerAnchor contract {contract} must hold root "
            "{root} for tree size {size} (transaction {tx})."
        ),
        "verify_pdf": (
            "This PDF is deterministic: the same log and parameters give the same bytes. "
            "Its SHA-256 is in the JSON export (pdf.sha256) and in the X-Report-SHA256 header:"
        ),
        "page": "Page {page} of {pages}",
        "response_title": "Urgent grants: how fast the fund answered",
        "response_on_time": (
            "Urgent grants decided within the deadline ({deadline_hours} h): {on_time} of "
            "{counted}."
        ),
        "response_median": (
            "Median time to a decision: {hours} h {minutes} min ({seconds} s), over {decided} "
            "decided in the cycle."
        ),
        "response_no_median": "Median time to a decision: none (no urgent grant decided).",
        "response_passed_on": (
            "At the handover, {carried} open grants were passed on to the next custodian and "
            "{voided} votes of the outgoing custodian became void."
        ),
        "response_unstated": (
            "The handover that closes the cycle states these figures; this report has none."
        ),
        "response_definition": (
            "An urgent grant counts in the cycle in which it was decided before its deadline, "
            "or else in the cycle in which its deadline passed; one cancelled before its "
            "deadline does not count. Computed from the entries' timestamps alone; lunaria "
            "audit recomputes them."
        ),
    },
    "es": {
        "title": "Informe del ciclo",
        "doc_title": "Lunaria: {pool_name}, ciclo lunar {cycle}",
        "doc_subject": (
            "Arrastre de saldos, donaciones, subvenciones, correcciones y traspasos del fondo "
            "{pool} en el ciclo lunar {cycle}, cubiertos por el checkpoint {size} de {origin}"
        ),
        "interim": "PROVISIONAL",
        "interim_note": (
            "Informe provisional: el ciclo aún no tiene un traspaso en un checkpoint. Cubre las "
            "entradas del ciclo por debajo del checkpoint de tamaño {size} y cambiará."
        ),
        "closed": "cerrado",
        "closed_note": (
            "Cerrado por el traspaso de la entrada {seq}; cubierto por el checkpoint de "
            "tamaño {size}."
        ),
        "pool": "Fondo",
        "cycle": "Ciclo lunar",
        "starts": "Comienza (luna nueva, UTC)",
        "ends": "Termina (luna nueva, UTC)",
        "custodian": "Colectivo custodio",
        "none": "ninguno",
        "checkpoint": "Checkpoint",
        "origin": "Origen del registro",
        "tree_size": "Tamaño del árbol",
        "root_b64": "Hash raíz (base64)",
        "root_hex": "Hash raíz (hex)",
        "signature": "Firma",
        "receipt_url": "URL del checkpoint (código QR)",
        "anchor": "Anclado en cadena",
        "not_anchored": "no anclado (todavía)",
        "chain_id": "Id de cadena",
        "contract": "Contrato",
        "transaction": "Transacción",
        "block": "Bloque",
        "anchored_size": "Tamaño del árbol anclado",
        "anchor_entry": "Entrada del anclaje",
        "roll_forward": "Arrastre de saldos",
        "currency": "Moneda",
        "opening": "Apertura",
        "donations": "+ Donaciones",
        "disbursements": "− Desembolsos",
        "corrections": "± Correcciones",
        "closing": "= Cierre",
        "committed": "Comprometido",
        "available": "Disponible",
        "fast_lane": "Vía rápida usada / asignación",
        "statement_ok": (
            "Igual a la declaración del traspaso en la entrada {seq} (data.closed.statement)."
        ),
        "statement_none": (
            "Todavía no hay declaración de traspaso: las cifras se calculan a partir de las "
            "entradas."
        ),
        "chart": "Donaciones y desembolsos por día del ciclo, {currency}",
        "chart_day": "día del ciclo",
        "legend_donations": "donaciones",
        "legend_disbursements": "desembolsos",
        "donations_title": "Donaciones",
        "grants_title": "Subvenciones",
        "corrections_title": "Correcciones",
        "custody_title": "Custodia y traspasos",
        "no_rows": "Ninguna en este ciclo.",
        "count": "entradas: {count}",
        "h_seq": "seq",
        "h_time": "hora (UTC)",
        "h_amount": "importe",
        "h_currency": "mon",
        "h_channel": "canal",
        "h_donor": "donante (compromiso o nombre)",
        "h_hash": "hash de entrada",
        "h_grant": "subv.",
        "h_event": "evento",
        "h_detail": "detalle",
        "h_corrects": "corrige",
        "h_kind": "tipo",
        "h_change": "cambio del fondo",
        "h_reason": "motivo",
        "h_from": "de",
        "h_to": "a",
        "corrected_by": "corregida por {seq}",
        "ev_proposed": "propuesta",
        "ev_proposed_earlier": "propuesta (ciclo {cycle})",
        "ev_vote": "voto",
        "ev_decided": "decidida",
        "ev_disbursed": "desembolsada",
        "ev_cancelled": "cancelada",
        "ev_reversed": "revertida",
        "void": "nulo: la custodia cambió",
        "quorum": "quórum {quorum}",
        "fast_lane_left": "vía rápida, asignación restante {left} {currency}",
        "approvals": "a favor: {names}",
        "rejections": "en contra: {names}",
        "ev_pool_created": "fondo creado",
        "ev_roster": "rotación fijada",
        "ev_opened": "traspaso de entrada",
        "ev_closed": "traspaso de salida",
        "custody_detail": (
            "arrastradas {carried}, comprometidas {committed}, votos anulados {voided}"
        ),
        "h_urgency": "urgencia",
        "h_status": "estado",
        "h_history": "destinatario · propósito, luego el historial (hora UTC, seq)",
        "proposed_by": "por {who}",
        "proposal_hash": "hash de la entrada de la propuesta {hash}",
        "st_open": "abierta",
        "st_approved": "aprobada",
        "st_rejected": "rechazada",
        "st_disbursed": "pagada",
        "st_cancelled": "cancelada",
        "st_reversed": "revertida",
        "signoff_title": "Conformidad",
        "signoff_intro": (
            "La custodia saliente entrega el fondo con el estado de cierre de arriba; la "
            "custodia entrante lo recibe. Ambas comprueban las cifras contra el registro en el "
            "checkpoint de abajo (los pasos al final de este informe) antes de firmar."
        ),
        "signoff_interim": (
            "El ciclo no ha cerrado: este informe provisional no es para firmar. El informe "
            "del ciclo cerrado llevará la entrada del traspaso que se firma."
        ),
        "signoff_handover": "Entrada del traspaso (seq {seq})",
        "signoff_outgoing": "Custodia saliente",
        "signoff_incoming": "Custodia entrante",
        "signoff_name": "Nombre de quien firma",
        "signoff_signature": "Firma",
        "signoff_date": "Fecha",
        "verify_title": "Cómo verificar este informe",
        "verify_intro": (
            "No confíe en nada de esto sin comprobarlo. Cada cifra se deriva de entradas "
            "públicas del registro; estos pasos solo necesitan las exportaciones y la clave "
            "de verificación del registro."
        ),
        "verify_get": ("Obtenga las entradas del ciclo con sus pruebas de inclusión, y la clave:"),
        "verify_leaf": (
            "En cada línea, el hash de la entrada es SHA-256(0x00 || JCS(entrada)), el hash "
            "de hoja de RFC 9162 sobre los bytes canónicos de RFC 8785; para estas entradas "
            "JCS(entrada) es:"
        ),
        "verify_proof": (
            "Cada prueba de inclusión debe llevar de ese hash a la raíz {root} con tamaño de "
            "árbol {size} (RFC 9162 §2.1.3.2). El checkpoint es una nota firmada C2SP, "
            "Ed25519, con nombre de clave {origin}; id de clave = SHA-256(nombre || 0x0A || "
            "0x01 || clave pública)[:4]. Debe verificarse con la clave del registro. Todo ello "
            "en una orden:"
        ),
        "verify_sums": (
            "Vuelva a derivar el arrastre: apertura = data.closed.statement de la entrada "
            "{opening} (cero para una entrada pool_created); donaciones = suma de data.amount "
            "de donation_recorded; desembolsos = suma de data.amount de grant_disbursed; "
            "correcciones = suma de data.fund_change de correction; comprometido y disponible "
            "= apertura + los data.postings a {pool}:committed y {pool}:available. Los "
            "importes están en unidades menores."
        ),
        "verify_statement": "Debe ser igual a data.closed.statement de la entrada {closing}.",
        "verify_whole": ("El registro entero y su historia (consistencia de cada checkpoint):"),
        "verify_anchor": (
            "En la cadena {chain_id}, el contrato LedgerAnchor {contract} debe guardar la "
            "raíz {root} para el tamaño de árbol {size} (transacción {tx})."
        ),
        "verify_pdf": (
            "Este PDF es determinista: el mismo registro y los mismos parámetros dan los "
            "mismos bytes. Su SHA-256 está en la exportación JSON (pdf.sha256) y en la "
            "cabecera X-Report-SHA256:"
        ),
        "page": "Página {page} de {pages}",
        "response_title": "Ayudas urgentes: qué tan rápido respondió el fondo",
        "response_on_time": (
            "Ayudas urgentes decididas dentro del plazo ({deadline_hours} h): {on_time} de "
            "{counted}."
        ),
        "response_median": (
            "Mediana del tiempo hasta la decisión: {hours} h {minutes} min ({seconds} s), "
            "sobre {decided} decididas en el ciclo."
        ),
        "response_no_median": (
            "Mediana del tiempo hasta la decisión: ninguna (no se decidió ninguna ayuda urgente)."
        ),
        "response_passed_on": (
            "En el traspaso, {carried} ayudas abiertas pasaron al siguiente custodio y "
            "{voided} votos del custodio saliente quedaron anulados."
        ),
        "response_unstated": (
            "El traspaso que cierra el ciclo declara estas cifras; este informe no las tiene."
        ),
        "response_definition": (
            "Una ayuda urgente cuenta en el ciclo en que se decidió antes de su plazo o, si no, "
            "en el ciclo en que venció su plazo; una cancelada antes de su plazo no cuenta. "
            "Calculado solo con las marcas de tiempo de las entradas; lunaria audit lo recalcula."
        ),
    },
    "uk": {
        "title": "Звіт за цикл",
        "doc_title": "Lunaria: {pool_name}, місячний цикл {cycle}",
        "doc_subject": (
            "Рух коштів, пожертви, гранти, виправлення та передачі фонду {pool} у місячному "
            "циклі {cycle}, покриті контрольною точкою {size} журналу {origin}"
        ),
        "interim": "ПРОМІЖНИЙ",
        "interim_note": (
            "Проміжний звіт: передачі за цей цикл ще немає в контрольній точці. Звіт охоплює "
            "записи циклу нижче контрольної точки розміром {size} і ще зміниться."
        ),
        "closed": "закритий",
        "closed_note": (
            "Закритий передачею в записі {seq}; покритий контрольною точкою розміром {size}."
        ),
        "pool": "Фонд",
        "cycle": "Місячний цикл",
        "starts": "Початок (молодий місяць, UTC)",
        "ends": "Кінець (молодий місяць, UTC)",
        "custodian": "Колектив-хранитель",
        "none": "немає",
        "checkpoint": "Контрольна точка",
        "origin": "Походження журналу",
        "tree_size": "Розмір дерева",
        "root_b64": "Кореневий хеш (base64)",
        "root_hex": "Кореневий хеш (hex)",
        "signature": "Підпис",
        "receipt_url": "URL контрольної точки (QR-код)",
        "anchor": "Закріплено в блокчейні",
        "not_anchored": "не закріплено (поки що)",
        "chain_id": "Ідентифікатор мережі",
        "contract": "Контракт",
        "transaction": "Транзакція",
        "block": "Блок",
        "anchored_size": "Розмір закріпленого дерева",
        "anchor_entry": "Запис закріплення",
        "roll_forward": "Рух коштів",
        "currency": "Валюта",
        "opening": "Початковий залишок",
        "donations": "+ Пожертви",
        "disbursements": "− Виплати",
        "corrections": "± Виправлення",
        "closing": "= Кінцевий залишок",
        "committed": "Зарезервовано",
        "available": "Доступно",
        "fast_lane": "Швидка смуга: використано / ліміт",
        "statement_ok": "Дорівнює звіту передачі в записі {seq} (data.closed.statement).",
        "statement_none": "Звіту передачі ще немає: суми обчислено із записів.",
        "chart": "Пожертви та виплати за днями циклу, {currency}",
        "chart_day": "день циклу",
        "legend_donations": "пожертви",
        "legend_disbursements": "виплати",
        "donations_title": "Пожертви",
        "grants_title": "Гранти",
        "corrections_title": "Виправлення",
        "custody_title": "Опіка та передачі",
        "no_rows": "У цьому циклі немає.",
        "count": "записів: {count}",
        "h_seq": "seq",
        "h_time": "час (UTC)",
        "h_amount": "сума",
        "h_currency": "вал",
        "h_channel": "канал",
        "h_donor": "донор (зобов'язання або ім'я)",
        "h_hash": "хеш запису",
        "h_grant": "грант",
        "h_event": "подія",
        "h_detail": "деталі",
        "h_corrects": "виправляє",
        "h_kind": "вид",
        "h_change": "зміна фонду",
        "h_reason": "причина",
        "h_from": "від",
        "h_to": "до",
        "corrected_by": "виправлено записом {seq}",
        "ev_proposed": "запропоновано",
        "ev_proposed_earlier": "запропоновано (цикл {cycle})",
        "ev_vote": "голос",
        "ev_decided": "рішення",
        "ev_disbursed": "виплачено",
        "ev_cancelled": "скасовано",
        "ev_reversed": "сторновано",
        "void": "недійсний: опіка перейшла",
        "quorum": "кворум {quorum}",
        "fast_lane_left": "швидка смуга, залишок ліміту {left} {currency}",
        "approvals": "за: {names}",
        "rejections": "проти: {names}",
        "ev_pool_created": "фонд створено",
        "ev_roster": "черговість встановлено",
        "ev_opened": "передача (прийом)",
        "ev_closed": "передача (здача)",
        "custody_detail": (
            "перенесено {carried}, зарезервовано {committed}, анульовано голосів {voided}"
        ),
        "h_urgency": "терміновість",
        "h_status": "стан",
        "h_history": "отримувач · мета, далі історія (час UTC, seq)",
        "proposed_by": "від {who}",
        "proposal_hash": "хеш запису пропозиції {hash}",
        "st_open": "відкрита",
        "st_approved": "схвалена",
        "st_rejected": "відхилена",
        "st_disbursed": "виплачена",
        "st_cancelled": "скасована",
        "st_reversed": "сторнована",
        "signoff_title": "Підписи",
        "signoff_intro": (
            "Попередній опікун передає фонд із наведеним вище підсумковим звітом; новий опікун "
            "його приймає. Обидва звіряють цифри з журналом на контрольній точці нижче (кроки "
            "наприкінці цього звіту), перш ніж підписати."
        ),
        "signoff_interim": (
            "Цикл ще не закрито: цей проміжний звіт не для підпису. Звіт закритого циклу "
            "міститиме запис передачі, який підписують."
        ),
        "signoff_handover": "Запис передачі (seq {seq})",
        "signoff_outgoing": "Попередній опікун",
        "signoff_incoming": "Новий опікун",
        "signoff_name": "Ім’я того, хто підписує",
        "signoff_signature": "Підпис",
        "signoff_date": "Дата",
        "verify_title": "Як перевірити цей звіт",
        "verify_intro": (
            "Не довіряйте нічому тут без перевірки. Кожне число виведено з публічних записів "
            "журналу; для цих кроків потрібні лише експорти та ключ перевірки журналу."
        ),
        "verify_get": "Отримайте записи циклу з доказами включення та ключ:",
        "verify_leaf": (
            "Для кожного рядка хеш запису дорівнює SHA-256(0x00 || JCS(запис)) — хеш листа "
            "за RFC 9162 від канонічних байтів RFC 8785; для цих записів JCS(запис) — це:"
        ),
        "verify_proof": (
            "Кожен доказ включення має вести від цього хешу до кореня {root} за розміру "
            "дерева {size} (RFC 9162 §2.1.3.2). Контрольна точка — підписана нотатка C2SP, "
            "Ed25519, ім'я ключа {origin}; ідентифікатор ключа = SHA-256(ім'я || 0x0A || 0x01 "
            "|| відкритий ключ)[:4]. Вона має перевірятися ключем журналу. Усе це однією "
            "командою:"
        ),
        "verify_sums": (
            "Виведіть рух коштів заново: початковий залишок = data.closed.statement запису "
            "{opening} (нуль для запису pool_created); пожертви = сума data.amount записів "
            "donation_recorded; виплати = сума data.amount записів grant_disbursed; "
            "виправлення = сума data.fund_change записів correction; зарезервовано й доступно "
            "= початкові + data.postings на {pool}:committed і {pool}:available. Суми — у "
            "мінімальних одиницях."
        ),
        "verify_statement": "Він має дорівнювати data.closed.statement запису {closing}.",
        "verify_whole": "Увесь журнал та його історія (узгодженість кожної контрольної точки):",
        "verify_anchor": (
            "У мережі {chain_id} контракт LedgerAnchor {contract} має зберігати корінь "
            "{root} для розміру дерева {size} (транзакція {tx})."
        ),
        "verify_pdf": (
            "Цей PDF детермінований: той самий журнал і ті самі параметри дають ті самі "
            "байти. Його SHA-256 є в JSON-експорті (pdf.sha256) та в заголовку X-Report-SHA256:"
        ),
        "page": "Сторінка {page} з {pages}",
        "response_title": "Термінові гранти: як швидко відповів фонд",
        "response_on_time": (
            "Термінові гранти, вирішені в строк ({deadline_hours} год): {on_time} з {counted}."
        ),
        "response_median": (
            "Медіана часу до рішення: {hours} год {minutes} хв ({seconds} с), за {decided} "
            "вирішеними в циклі."
        ),
        "response_no_median": (
            "Медіана часу до рішення: немає (жодного термінового гранту не вирішено)."
        ),
        "response_passed_on": (
            "Під час передачі {carried} відкритих грантів передано наступному розпоряднику, "
            "а {voided} голосів розпорядника, що йде, анульовано."
        ),
        "response_unstated": (
            "Ці показники фіксує передача, що закриває цикл; у цьому звіті їх немає."
        ),
        "response_definition": (
            "Терміновий грант зараховується до циклу, у якому його вирішили до строку, а інакше "
            "— до циклу, у якому строк минув; скасований до строку не враховується. Обчислено "
            "лише з часових позначок записів; lunaria audit їх перераховує."
        ),
    },
}


def strings(lang: str) -> Mapping[str, str]:
    """The table for ``lang`` (which must be one of :data:`LANGUAGES`)."""
    return STRINGS[lang]


def choose_language(requested: str | None = None, accept_language: str | None = None) -> str:
    """``requested`` if supported, else the best ``Accept-Language`` match, else English."""
    if requested:
        base = requested.strip().lower().replace("_", "-").split("-")[0]
        if base in LANGUAGES:
            return base
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for tag, quality in _parse_accept(accept_language or ""):
        base = tag.split("-")[0]
        if base in LANGUAGES and quality > best_q:  # the first of equals wins
            best, best_q = base, quality
    return best


def _parse_accept(header: str) -> list[tuple[str, float]]:
    """``Accept-Language`` as (lowercase tag, quality), in header order; bad parts skipped."""
    result = []
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if tag and 0 < quality <= 1:
            result.append((tag.strip().lower(), quality))
    return result
