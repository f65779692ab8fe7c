"""The demo company both sandboxes seed from, so their data match.

Midlands Precision Engineering: a UK manufacturer with two Exact Online divisions, each routed from one JAGGAER
business unit. Everything here is deterministic (uuid5 GUIDs, a seeded random for addresses and phone numbers),
so every run, every process and both sandboxes see the same suppliers, codes and GUIDs.

Exact keeps one database per division, so an entity's GUID differs per division: use ``guid(kind, division, code)``
(or ``Supplier.account_id(division)``, ``GLAccount.id(division)``, ...) for the GUID an Exact sandbox uses.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

NAMESPACE = uuid.UUID("6f1c1f0e-5d7b-4a53-9a59-3c0e1b7d2a41")

COMPANY_NAME = "Midlands Precision Engineering"
DIVISIONS: dict[int, dict[str, str]] = {
    111111: {
        "name": "Midlands Precision Engineering Ltd",
        "business_unit": "UK-MFG",
        "city": "Coventry",
        "vat_number": "GB284117390",
        "chamber_of_commerce": "04512873",
    },
    222222: {
        "name": "Midlands Precision Services Ltd",
        "business_unit": "UK-SVC",
        "city": "Wolverhampton",
        "vat_number": "GB301552846",
        "chamber_of_commerce": "07731904",
    },
}
BUSINESS_UNITS: dict[str, int] = {"UK-MFG": 111111, "UK-SVC": 222222}
CURRENCY = "GBP"

# The demo user who consents in the Exact sandbox.
DEMO_USER = {
    "UserID": str(uuid.uuid5(NAMESPACE, "user:demo")),
    "UserName": "finance.admin@midlandsprecision.co.uk",
    "FullName": "Fiona Adams",
    "FirstName": "Fiona",
    "LastName": "Adams",
    "Email": "finance.admin@midlandsprecision.co.uk",
    "LanguageCode": "en-GB",
}


def guid(kind: str, division: int | None, code: str | int) -> str:
    """Deterministic GUID of an entity (``kind`` e.g. "account", "glaccount") in a division."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{division}:{code}"))


# --------------------------------------------------------------------------------------------------- suppliers
# (name, category, city, postcode, street)
_SUPPLIER_ROWS: list[tuple[str, str, str, str, str]] = [
    ("Brammer Steel Stockholders Ltd", "raw", "Walsall", "WS2 8LP", "Darlaston Road"),
    ("Kingsbury Aluminium Supplies Ltd", "raw", "Tamworth", "B78 2EX", "Kingsbury Link"),
    ("Sheffield Bright Bar Ltd", "raw", "Sheffield", "S9 3QP", "Attercliffe Common"),
    ("Castle Brass & Copper Ltd", "raw", "Birmingham", "B6 7JJ", "Aston Lane"),
    ("Tyne Plastics Polymers Ltd", "raw", "Gateshead", "NE11 0SX", "Team Valley Trading Estate"),
    ("Black Country Forgings Ltd", "raw", "Cradley Heath", "B64 6AS", "Forge Lane"),
    ("Northern Tube Services Ltd", "raw", "Leeds", "LS10 1RJ", "Hunslet Road"),
    ("Severn Castings Ltd", "raw", "Telford", "TF3 3BA", "Halesfield 12"),
    ("Apex Fasteners & Fixings Ltd", "components", "Wednesbury", "WS10 7SZ", "Leabrook Road"),
    ("Precision Bearings UK Ltd", "components", "Nuneaton", "CV11 6RZ", "Attleborough Fields"),
    ("Midland Hydraulics Ltd", "components", "Redditch", "B98 9PA", "Moons Moat Drive"),
    ("Pennine Seals & Gaskets Ltd", "components", "Huddersfield", "HD2 1GQ", "Leeds Road"),
    ("Orbit Electrical Components Ltd", "components", "Milton Keynes", "MK12 5NP", "Wolverton Mill"),
    ("Trent Valley Springs Ltd", "components", "Burton upon Trent", "DE14 2WF", "Centrum 100"),
    ("Coventry Gear Company Ltd", "components", "Coventry", "CV6 5RF", "Foleshill Road"),
    ("Solent Pneumatics Ltd", "components", "Southampton", "SO15 0HW", "Millbrook Road West"),
    ("Dudley CNC Subcontract Ltd", "subcontract", "Dudley", "DY2 0XW", "Pedmore Road"),
    ("Wrekin Heat Treatment Ltd", "subcontract", "Telford", "TF1 7UL", "Stafford Park 4"),
    ("Chiltern Powder Coating Ltd", "subcontract", "High Wycombe", "HP12 3RE", "Cressex Business Park"),
    ("Bescot Laser Cutting Ltd", "subcontract", "Walsall", "WS5 4NR", "Bescot Crescent"),
    ("Anodise Midlands Ltd", "subcontract", "Smethwick", "B66 2SP", "Rolfe Street"),
    ("Humber Galvanizing Ltd", "subcontract", "Hull", "HU9 5PQ", "Hedon Road"),
    ("Cotswold Tool & Gauge Ltd", "subcontract", "Cheltenham", "GL51 9SH", "Kingsditch Lane"),
    ("Wear Precision Grinding Ltd", "subcontract", "Sunderland", "SR5 3JH", "Pallion Industrial Estate"),
    ("Arrow Industrial Consumables Ltd", "consumables", "Oldbury", "B69 4EZ", "Birchley Island"),
    ("Cutwell Tooling Supplies Ltd", "consumables", "Leicester", "LE4 9HA", "Troon Way"),
    ("ShopFloor Safety Direct Ltd", "consumables", "Stoke-on-Trent", "ST4 4EU", "Trentham Lakes"),
    ("Lubetech Oils & Coolants Ltd", "consumables", "Ellesmere Port", "CH65 4EQ", "Bridges Road"),
    ("Abrasives Warehouse UK Ltd", "consumables", "Rotherham", "S60 1BX", "Canklow Road"),
    ("PackRight Packaging Ltd", "consumables", "Daventry", "NN11 8RD", "Royal Oak Way"),
    ("Weldmart Gases & Welding Ltd", "consumables", "Wolverhampton", "WV10 9QY", "Stafford Road"),
    ("M6 Freight Services Ltd", "carriage", "Cannock", "WS11 8JP", "Watling Street"),
    ("Palletline Midlands Ltd", "carriage", "Birmingham", "B46 1AL", "Coleshill Parkway"),
    ("Crosschannel Haulage Ltd", "carriage", "Dover", "CT16 1JA", "Honeywood Parkway"),
    ("Nightfreight Express Ltd", "carriage", "Northampton", "NN4 7PB", "Brackmills Industrial Estate"),
    ("Mazak Service Engineers Ltd", "maintenance", "Worcester", "WR4 9FF", "Badgeworth Drive"),
    ("Compressed Air Maintenance Ltd", "maintenance", "Derby", "DE24 8UU", "Osmaston Park Road"),
    ("Crane & Hoist Inspections Ltd", "maintenance", "Stafford", "ST16 3DG", "Beaconside"),
    ("FacilityCare Building Services Ltd", "maintenance", "Solihull", "B90 4GD", "Blythe Valley Park"),
    ("Calibration Laboratories UK Ltd", "maintenance", "Rugby", "CV21 1QN", "Somers Road"),
    ("Hughes & Patel Chartered Accountants LLP", "professional", "Birmingham", "B3 2HJ", "Colmore Row"),
    ("Wright Hassall Solicitors LLP", "professional", "Leamington Spa", "CV32 4PG", "Olympus Avenue"),
    ("ISO Assure Certification Ltd", "professional", "Nottingham", "NG7 2TU", "Triumph Road"),
    ("Engineering Skills Academy Ltd", "professional", "Coventry", "CV1 2TT", "Far Gosford Street"),
    ("Midlands Recruitment Partners Ltd", "professional", "Leicester", "LE1 6RL", "Granby Street"),
    ("Patent & Design Attorneys LLP", "professional", "London", "EC4A 1BL", "Fetter Lane"),
    ("CloudStack IT Solutions Ltd", "it", "Reading", "RG2 6UB", "Green Park"),
    ("Sage Network Services Ltd", "it", "Manchester", "M1 3BE", "Portland Street"),
    ("CADline Software Ltd", "it", "Cambridge", "CB4 0WS", "Cambridge Science Park"),
    ("SecureComms Telecoms Ltd", "it", "Bristol", "BS1 6FL", "Temple Quay"),
    ("PrintFleet Office Solutions Ltd", "it", "Coventry", "CV4 9AG", "Westwood Way"),
    ("Stirling Precision Plastics Ltd", "components", "Stirling", "FK7 7XE", "Springkerse Industrial Estate"),
    ("Welsh Valley Fabrications Ltd", "subcontract", "Merthyr Tydfil", "CF48 4DR", "Pentrebach Road"),
    ("Belfast Engineering Castings Ltd", "raw", "Belfast", "BT3 9JQ", "Duncrue Street"),
    ("Eastern Counties Electrical Ltd", "components", "Norwich", "NR6 6EP", "Hellesdon Park Road"),
    ("Greenline Waste Management Ltd", "maintenance", "Coventry", "CV3 4FX", "Torrington Avenue"),
    ("Anglia Industrial Cleaning Ltd", "maintenance", "Ipswich", "IP3 9SJ", "Ransomes Europark"),
    ("Pentagon Office Supplies Ltd", "consumables", "Luton", "LU1 3HS", "Kimpton Road"),
    ("Mercia Energy Brokers Ltd", "professional", "Shrewsbury", "SY1 3TE", "Battlefield Enterprise Park"),
    ("Redline Couriers Ltd", "carriage", "West Bromwich", "B70 0AB", "Kelvin Way"),
]

_JAGGAER_ONLY_ROWS: list[tuple[str, str, str, str, str]] = [
    ("Grainger Lab Supplies Ltd", "consumables", "Loughborough", "LE11 3QF", "Ashby Road"),
    ("Nordic Tooling AB UK Branch", "components", "Hull", "HU7 0YW", "Kingswood Business Park"),
    ("Thames Valley Signage Ltd", "professional", "Slough", "SL1 4QZ", "Bath Road"),
    ("Peak District Mineral Water Ltd", "consumables", "Buxton", "SK17 9TQ", "Waterswallows Road"),
    ("Albion Workwear Ltd", "consumables", "Manchester", "M17 1RL", "Trafford Park Road"),
    ("Summit Training Events Ltd", "professional", "Harrogate", "HG1 5LA", "King's Road"),
]

# Default GL account / cost centre / VAT code per category (used by the PO and invoice generators).
CATEGORY_DEFAULTS: dict[str, dict[str, str]] = {
    "raw": {"gl": "7000", "cc": "CC100", "vat": "1", "item_group": "RAW"},
    "components": {"gl": "7010", "cc": "CC100", "vat": "1", "item_group": "CMP"},
    "subcontract": {"gl": "7100", "cc": "CC100", "vat": "1", "item_group": "SUB"},
    "consumables": {"gl": "7200", "cc": "CC200", "vat": "1", "item_group": "CON"},
    "carriage": {"gl": "7300", "cc": "CC400", "vat": "1", "item_group": "SRV"},
    "maintenance": {"gl": "7400", "cc": "CC200", "vat": "1", "item_group": "SRV"},
    "professional": {"gl": "7500", "cc": "CC500", "vat": "1", "item_group": "SRV"},
    "it": {"gl": "7600", "cc": "CC500", "vat": "1", "item_group": "SRV"},
}


@dataclass(frozen=True)
class Supplier:
    """A supplier of the demo company. ``exact=False``: a JAGGAER-only vendor (no Exact account, ``code`` "")."""

    key: str  # stable identifier across both sandboxes ("SUP-1001", "JGO-01")
    id: str  # GUID of its account in its first division ("" when JAGGAER-only)
    code: str  # Exact account code, unpadded ("1001"); "" when JAGGAER-only
    name: str
    category: str
    vat_number: str
    chamber_of_commerce: str
    email: str
    phone: str
    address_line1: str
    city: str
    postcode: str
    country: str
    duns: str
    divisions: tuple[int, ...]
    jaggaer_id: int  # JAGGAER's own supplier id
    jaggaer_name: str  # the name as it is spelled in JAGGAER (sometimes not as in Exact)
    exact: bool = True
    blocked: bool = False  # blocked in Exact (purchase entries refused)
    payment_terms_days: int = 30
    currency: str = CURRENCY
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def account_id(self, division: int) -> str:
        """The Exact account GUID of this supplier in ``division``."""
        return guid("account", division, self.code)

    @property
    def padded_code(self) -> str:
        """The code as Exact stores it: 18 characters, right-aligned, space-padded."""
        return self.code.rjust(18)

    @property
    def default_gl(self) -> str:
        return CATEGORY_DEFAULTS[self.category]["gl"]

    @property
    def default_cost_center(self) -> str:
        return CATEGORY_DEFAULTS[self.category]["cc"]


def _vat(rng: random.Random) -> str:
    return "GB" + "".join(str(rng.randint(0, 9)) for _ in range(9))


def _domain(name: str) -> str:
    stem = name.lower()
    for token in (" ltd", " llp", " uk branch", "&", ",", "."):
        stem = stem.replace(token, " ")
    words = [w for w in stem.split() if w not in {"and", "the"}]
    return "".join(words[:3]) + ".co.uk"


def _build_suppliers() -> tuple[list[Supplier], list[Supplier]]:
    rng = random.Random(20261123)
    exact: list[Supplier] = []
    for i, (name, category, city, postcode, street) in enumerate(_SUPPLIER_ROWS):
        code = str(1001 + i)
        if i % 10 == 7:
            divisions: tuple[int, ...] = (111111,)
        elif i % 10 == 4 and i >= 20:
            divisions = (222222,)
        else:
            divisions = (111111, 222222)
        vat = "" if i in (43, 58) else _vat(rng)  # a training academy and a broker: not VAT-registered
        jaggaer_name = name
        if i in (2, 15, 30):  # spelled differently in JAGGAER: match by VAT/code, not by name
            jaggaer_name = name.replace(" Ltd", " Limited")
        supplier = Supplier(
            key=f"SUP-{code}",
            id=guid("account", divisions[0], code),
            code=code,
            name=name,
            category=category,
            vat_number=vat,
            chamber_of_commerce=f"{rng.randint(1_000_000, 13_999_999):08d}",
            email=f"accounts@{_domain(name)}",
            phone=f"0{rng.choice(['121', '24', '1902', '114', '115', '161', '1952'])} {rng.randint(200, 999)} "
            f"{rng.randint(1000, 9999)}",
            address_line1=f"{rng.randint(1, 240)} {street}",
            city=city,
            postcode=postcode,
            country="GB",
            duns=f"{rng.randint(200_000_000, 999_999_999)}",
            divisions=divisions,
            jaggaer_id=50001 + i,
            jaggaer_name=jaggaer_name,
            blocked=(i == 59),
            payment_terms_days=rng.choice([30, 30, 30, 45, 60]),
        )
        exact.append(supplier)
    only: list[Supplier] = []
    for j, (name, category, city, postcode, street) in enumerate(_JAGGAER_ONLY_ROWS):
        only.append(
            Supplier(
                key=f"JGO-{j + 1:02d}",
                id="",
                code="",
                name=name,
                category=category,
                vat_number=_vat(rng),
                chamber_of_commerce=f"{rng.randint(1_000_000, 13_999_999):08d}",
                email=f"sales@{_domain(name)}",
                phone=f"0{rng.randint(1200, 1999)} {rng.randint(100000, 999999)}",
                address_line1=f"{rng.randint(1, 240)} {street}",
                city=city,
                postcode=postcode,
                country="GB",
                duns=f"{rng.randint(200_000_000, 999_999_999)}",
                divisions=(),
                jaggaer_id=59001 + j,
                jaggaer_name=name,
                exact=False,
            )
        )
    return exact, only


SUPPLIERS, JAGGAER_ONLY_VENDORS = _build_suppliers()
ALL_VENDORS: list[Supplier] = SUPPLIERS + JAGGAER_ONLY_VENDORS


def supplier_by_code(code: str) -> Supplier:
    code = code.strip()
    for s in SUPPLIERS:
        if s.code == code:
            return s
    raise KeyError(code)


def suppliers_in(division: int) -> list[Supplier]:
    division = SECOND_COMPANY_MIRRORS.get(division, division)
    return [s for s in SUPPLIERS if division in s.divisions]


# --------------------------------------------------------------------------------------------------- second tenant
# A second customer of the connector (cluster runs: two tenants x two divisions). Opt-in: the sandboxes seed it only
# when reset with ``{"second_tenant": true}``, so the default demo (and every test that counts divisions) is unchanged.
# Its divisions mirror the demo's (same supplier codes and ledgers, their own GUIDs), so the same vendor matching works.
SECOND_COMPANY_NAME = "Northfield Fabrication Group"
SECOND_TENANT = "northfield"
SECOND_DIVISIONS: dict[int, dict[str, str]] = {
    333333: {
        "name": "Northfield Fabrication Ltd",
        "business_unit": "NF-FAB",
        "city": "Leeds",
        "vat_number": "GB412230871",
        "chamber_of_commerce": "09123456",
    },
    444444: {
        "name": "Northfield Assembly Ltd",
        "business_unit": "NF-ASM",
        "city": "Bradford",
        "vat_number": "GB412230972",
        "chamber_of_commerce": "09123457",
    },
}
SECOND_BUSINESS_UNITS: dict[str, int] = {"NF-FAB": 333333, "NF-ASM": 444444}
SECOND_COMPANY_MIRRORS: dict[int, int] = {333333: 111111, 444444: 222222}  # second division -> demo division


def division_info(code: int) -> dict[str, str]:
    """Name, city, VAT number ... of a division of either company (a bare name for an unknown code)."""
    return DIVISIONS.get(code) or SECOND_DIVISIONS.get(code) or {"name": f"Division {code}"}


# --------------------------------------------------------------------------------------------------- ledgers
@dataclass(frozen=True)
class GLAccount:
    code: str
    description: str
    type: int  # Exact GL account type: 110 = cost, 32 = creditors, 40 = VAT (simplified)
    balance_side: str = "D"
    vat_code: str = ""
    use_costcenter: bool = False
    blocked: bool = False

    def id(self, division: int) -> str:
        return guid("glaccount", division, self.code)


GL_ACCOUNTS: list[GLAccount] = [
    GLAccount("1600", "Purchase ledger control", 32, "C"),
    GLAccount("2200", "VAT", 40, "C"),
    GLAccount("7000", "Raw materials", 110, vat_code="1", use_costcenter=True),
    GLAccount("7010", "Components", 110, vat_code="1", use_costcenter=True),
    GLAccount("7100", "Subcontracting", 110, vat_code="1", use_costcenter=True),
    GLAccount("7200", "Consumables", 110, vat_code="1", use_costcenter=True),
    GLAccount("7300", "Carriage inwards", 110, vat_code="1", use_costcenter=True),
    GLAccount("7400", "Repairs & maintenance", 110, vat_code="1", use_costcenter=True),
    GLAccount("7500", "Professional services", 110, vat_code="1", use_costcenter=True),
    GLAccount("7600", "IT services", 110, vat_code="1", use_costcenter=True),
    GLAccount("7999", "Suspense purchases (blocked)", 110, vat_code="1", blocked=True),
]


@dataclass(frozen=True)
class CostCenter:
    code: str
    description: str
    active: bool = True

    def id(self, division: int) -> str:
        return guid("costcenter", division, self.code)


COST_CENTERS: list[CostCenter] = [
    CostCenter("CC100", "Production"),
    CostCenter("CC200", "Maintenance"),
    CostCenter("CC300", "Quality"),
    CostCenter("CC400", "Logistics"),
    CostCenter("CC500", "Admin"),
    CostCenter("CC900", "Closed site (inactive)", active=False),
]

# Cost units (Exact "CostUnit"): projects/contracts.
COST_UNITS: list[CostCenter] = [
    CostCenter("CU01", "Aerospace brackets contract"),
    CostCenter("CU02", "Automotive pump housings"),
    CostCenter("CU03", "Rail bogie components"),
    CostCenter("CU99", "Old prototype (inactive)", active=False),
]


@dataclass(frozen=True)
class VATCode:
    code: str
    description: str
    percentage: float  # fraction, as Exact reports it (0.2 = 20 %)
    type: str = "E"  # E = exclusive
    blocked: bool = False

    def id(self, division: int) -> str:
        return guid("vatcode", division, self.code)


VAT_CODES: list[VATCode] = [
    VATCode("1", "Standard rate 20%", 0.20),
    VATCode("2", "Reduced rate 5%", 0.05),
    VATCode("3", "Zero rated 0%", 0.0),
    VATCode("4", "Exempt", 0.0),
    VATCode("5", "EC acquisitions 0%", 0.0),
    VATCode("9", "Old standard rate 17.5% (blocked)", 0.175, blocked=True),
]


@dataclass(frozen=True)
class Journal:
    code: str
    description: str
    type: int  # 20 sales, 22 purchase, 90 general

    def id(self, division: int) -> str:
        return guid("journal", division, self.code)


JOURNALS: list[Journal] = [
    Journal("60", "Purchase journal", 22),
    Journal("61", "Purchase journal 2", 22),
    Journal("70", "Sales journal", 20),
    Journal("90", "General journal", 90),
]


# --------------------------------------------------------------------------------------------------- items
@dataclass(frozen=True)
class ItemGroup:
    code: str
    description: str
    gl_account: str

    def id(self, division: int) -> str:
        return guid("itemgroup", division, self.code)


ITEM_GROUPS: list[ItemGroup] = [
    ItemGroup("RAW", "Raw materials", "7000"),
    ItemGroup("CMP", "Bought-in components", "7010"),
    ItemGroup("SUB", "Subcontract operations", "7100"),
    ItemGroup("CON", "Consumables", "7200"),
    ItemGroup("SRV", "Services", "7500"),
]


@dataclass(frozen=True)
class Item:
    code: str
    description: str
    group: str
    unit: str
    price: float  # default purchase price, GBP
    vat_code: str = "1"

    def id(self, division: int) -> str:
        return guid("item", division, self.code)

    @property
    def category(self) -> str:
        return {"RAW": "raw", "CMP": "components", "SUB": "subcontract", "CON": "consumables"}.get(
            self.group, "professional"
        )


ITEMS: list[Item] = [
    Item("RM-S275-10", "Steel plate S275 10mm", "RAW", "kg", 1.18),
    Item("RM-S355-20", "Steel plate S355 20mm", "RAW", "kg", 1.32),
    Item("RM-EN8-50", "EN8 bright bar 50mm dia", "RAW", "m", 14.60),
    Item("RM-AL6082-25", "Aluminium 6082-T6 bar 25mm", "RAW", "m", 9.85),
    Item("RM-AL5083-6", "Aluminium 5083 sheet 6mm", "RAW", "sheet", 212.40),
    Item("RM-CZ121-20", "Brass CZ121 hex bar 20mm", "RAW", "m", 18.30),
    Item("RM-SS316-40", "Stainless 316 round bar 40mm", "RAW", "m", 41.75),
    Item("RM-NYL66-GR", "Nylon 66 granules", "RAW", "kg", 3.40),
    Item("CP-M8X25-HT", "Hex bolt M8x25 grade 8.8", "CMP", "pc", 0.11),
    Item("CP-M10-NUT", "Hex nut M10 A2 stainless", "CMP", "pc", 0.06),
    Item("CP-6204-2RS", "Deep groove ball bearing 6204-2RS", "CMP", "pc", 2.35),
    Item("CP-HYD-CYL50", "Hydraulic cylinder 50mm bore", "CMP", "pc", 186.00),
    Item("CP-ORING-KIT", "O-ring kit nitrile", "CMP", "set", 24.50),
    Item("CP-SPR-C12", "Compression spring 12mm", "CMP", "pc", 0.42),
    Item("CP-GEAR-M2", "Spur gear module 2, 40T", "CMP", "pc", 17.90),
    Item("CP-PNEU-VALVE", "Pneumatic 5/2 valve", "CMP", "pc", 58.20),
    Item("SB-CNC-HR", "CNC machining (per hour)", "SUB", "h", 55.00),
    Item("SB-HEAT-TRT", "Heat treatment batch", "SUB", "batch", 145.00),
    Item("SB-POWDER", "Powder coating per part", "SUB", "pc", 3.80),
    Item("SB-LASER", "Laser cutting per sheet", "SUB", "sheet", 38.00),
    Item("SB-ANODISE", "Anodising per part", "SUB", "pc", 1.95),
    Item("CN-INSERT-CNMG", "Turning insert CNMG 120408", "CON", "pc", 6.40),
    Item("CN-DRILL-8", "Carbide drill 8mm", "CON", "pc", 27.50),
    Item("CN-COOLANT-20", "Soluble coolant 20L", "CON", "drum", 64.00),
    Item("CN-GLOVES", "Cut-resistant gloves", "CON", "pair", 4.10),
    Item("CN-DISC-115", "Flap disc 115mm P60", "CON", "pc", 1.85),
    Item("CN-ARGON", "Argon cylinder refill", "CON", "pc", 48.00),
    Item("SV-CARRIAGE", "Carriage charge", "SRV", "job", 45.00),
    Item("SV-SERVICE", "Machine service visit", "SRV", "visit", 420.00),
    Item("SV-CALIB", "Instrument calibration", "SRV", "pc", 35.00),
    Item("SV-CONSULT", "Consultancy (per day)", "SRV", "day", 650.00),
    Item("SV-IT-SUPPORT", "IT support (monthly)", "SRV", "month", 890.00),
]


def items_for_category(category: str) -> list[Item]:
    group = CATEGORY_DEFAULTS[category]["item_group"]
    return [i for i in ITEMS if i.group == group]
