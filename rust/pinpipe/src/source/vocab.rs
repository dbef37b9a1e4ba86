//! Words of the synthetic generator and the pins written from them: the 243 country names of
//! `geolocation_data`, common English first names and surnames (each list sorted, since user
//! attributes are drawn by quantile of the sorted list), and for pins the words of titles,
//! descriptions, tags and poster accounts per category, the poster pools with their follower
//! counts, and the sentinel values of dirty rows at the rates observed in the real table.

use crate::model::PinRow;

/// `title` of a pin whose title could not be scraped.
pub const NO_TITLE: &str = "No Title Data Available";
/// `description` of a story-format pin.
pub const STORY_DESCRIPTION: &str = "No description available Story format";
/// `description` of a pin without one.
pub const NO_DESCRIPTION: &str = "No description available";
/// `description` of an untitled pin.
pub const UNTITLED: &str = "Untitled";
/// `poster_name` and `follower_count` when the poster could not be scraped.
pub const USER_INFO_ERROR: &str = "User Info Error";
/// `tag_list` of a pin without tags (the text "No Tags Available" split into characters).
pub const NO_TAGS: &str = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e";
/// `image_src` of a pin whose image could not be fetched.
pub const IMAGE_SRC_ERROR: &str = "Image src error.";
/// `is_image_or_video` of a story-format pin.
pub const STORY_FORMAT: &str = "multi-video(story page format)";

/// Follower-count shapes of posters, `<n>k`, plain digits and `<n>M`: 1,616, 375 and 152 of the
/// 2,143 valid values observed.
pub const FOLLOWER_SHAPES: [f64; 3] = [1_616.0, 375.0, 152.0];
/// The rates of dirty values are given per this many rows (see [`CategoryWords::pin`]).
pub const DIRT_DRAWS: u64 = 178;
/// Share of clean pins that are videos, in percent.
const VIDEO_PERCENT: u64 = 8;

/// The generator's randomness as the pin writer uses it.
pub trait Draw {
    /// 64 uniform random bits.
    fn bits(&mut self) -> u64;

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.bits();
            if x < zone {
                return x % n;
            }
        }
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniformly chosen item of a non-empty list.
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// How a pin row is dirty, if at all: one draw per row in `0..DIRT_DRAWS`. Per 178 rows:
/// all-sentinel 3, story 9 (12 story descriptions in all), no description 2, untitled 1, no tags
/// 3 (6 in all), image error 1 (4 in all); titles, posters and follower counts are sentinels 3
/// times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dirt {
    /// A story page that could not be scraped: every text field a sentinel, not downloaded.
    AllSentinel,
    /// A story page with the story description.
    Story,
    NoDescription,
    Untitled,
    NoTags,
    /// Image source error, not downloaded.
    ImageError,
    Clean,
}

impl Dirt {
    fn from_draw(d: u64) -> Dirt {
        match d % DIRT_DRAWS {
            0..=2 => Dirt::AllSentinel,
            3..=11 => Dirt::Story,
            12..=13 => Dirt::NoDescription,
            14 => Dirt::Untitled,
            15..=17 => Dirt::NoTags,
            18 => Dirt::ImageError,
            _ => Dirt::Clean,
        }
    }

    /// Writes this kind's sentinels into `pin`.
    fn apply(self, pin: &mut PinRow) {
        let set = |field: &mut String, value: &str| *field = value.to_string();
        if self == Dirt::AllSentinel {
            set(&mut pin.title, NO_TITLE);
            set(&mut pin.poster_name, USER_INFO_ERROR);
            set(&mut pin.follower_count, USER_INFO_ERROR);
        }
        if matches!(self, Dirt::AllSentinel | Dirt::Story) {
            set(&mut pin.description, STORY_DESCRIPTION);
            set(&mut pin.is_image_or_video, STORY_FORMAT);
        }
        if matches!(self, Dirt::AllSentinel | Dirt::NoTags) {
            set(&mut pin.tag_list, NO_TAGS);
        }
        if matches!(self, Dirt::AllSentinel | Dirt::ImageError) {
            set(&mut pin.image_src, IMAGE_SRC_ERROR);
            pin.downloaded = 0;
        }
        match self {
            Dirt::NoDescription => set(&mut pin.description, NO_DESCRIPTION),
            Dirt::Untitled => set(&mut pin.description, UNTITLED),
            _ => {}
        }
    }
}

/// One poster account: its name and its follower count text, the same on all its pins.
#[derive(Debug, Clone)]
pub struct Poster {
    /// `poster_name`.
    pub name: String,
    /// `follower_count` ("136k", "437", "2M").
    pub follower_count: String,
}

/// The posters of one category, most popular first, with cumulative Zipf weights.
#[derive(Debug, Clone)]
pub struct PosterPool {
    posters: Vec<Poster>,
    weight_ends: Vec<f64>,
}

impl PosterPool {
    /// `size` posters with distinct names; follower-count shapes are dealt so that their shares
    /// over pins (weighted by popularity) follow [`FOLLOWER_SHAPES`].
    pub fn new(words: &CategoryWords, size: usize, rng: &mut impl Draw) -> Self {
        let combos = words.poster_names();
        let stride = (combos * 5 / 8..combos).find(|&s| gcd(s, combos) == 1).unwrap_or(1);
        let offset = rng.below(combos as u64) as usize;
        let total: f64 = (1..=size).map(|i| 1.0 / i as f64).sum();
        let shape_total: f64 = FOLLOWER_SHAPES.iter().sum();
        let (mut seen, mut dealt) = (0.0, [0.0f64; 3]);
        let mut pool = PosterPool { posters: Vec::with_capacity(size), weight_ends: Vec::new() };
        for i in 0..size {
            let weight = 1.0 / (i + 1) as f64;
            seen += weight;
            // The shape furthest behind its share so far.
            let lag = |s: usize| FOLLOWER_SHAPES[s] / shape_total * seen - dealt[s];
            let shape = (0..3).max_by(|&a, &b| lag(a).total_cmp(&lag(b))).unwrap_or(0);
            dealt[shape] += weight;
            let follower_count = match shape {
                0 => format!("{}k", log_uniform(rng, 999)),
                1 => log_uniform(rng, 999).to_string(),
                _ => format!("{}M", log_uniform(rng, 30)),
            };
            let name = words.poster_name((i % combos * stride + offset) % combos + i / combos * combos);
            pool.posters.push(Poster { name, follower_count });
            pool.weight_ends.push(seen / total);
        }
        pool
    }

    /// The poster at popularity quantile `u` in `[0, 1)`.
    pub fn pick(&self, u: f64) -> &Poster {
        let i = self.weight_ends.partition_point(|&end| end <= u);
        &self.posters[i.min(self.posters.len() - 1)]
    }
}

/// The words a pin of one category is written from.
pub struct CategoryWords {
    /// Category name as stored in `pinterest_data.category` (and in its save location).
    pub name: &'static str,
    /// Relative share of rows in this category.
    pub weight: u32,
    /// Nouns for titles and poster names ("Watercolor", "Road Trip").
    pub topics: &'static [&'static str],
    /// Tags that `tag_list` is made of.
    pub tags: &'static [&'static str],
    /// Opening sentences of descriptions.
    pub blurbs: &'static [&'static str],
}

/// The 13 categories of `pinterest_data`, in alphabetical order.
#[rustfmt::skip]
pub const CATEGORIES: [CategoryWords; 13] = [
    CategoryWords {
        name: "art",
        weight: 9,
        topics: &["Watercolor", "Sketch", "Portrait", "Mandala", "Acrylic Painting", "Doodle", "Abstract Art", "Charcoal Drawing", "Ink Drawing", "Canvas Art", "Still Life", "Landscape Painting"],
        tags: &["Art Drawings", "Watercolor Art", "Painting Ideas", "Sketchbook", "Mandala Art", "Art Inspiration", "Drawing Tutorial", "Abstract Painting", "Canvas Painting", "Art Journal", "Pencil Art", "Easy Drawings"],
        blurbs: &["A relaxing project for a quiet afternoon.", "Layer light washes first and build up the darks slowly.", "Practice a little every day and watch your lines improve.", "Bold colors and simple shapes make a striking piece.", "Great for beginners and seasoned artists alike."],
    },
    CategoryWords {
        name: "beauty",
        weight: 8,
        topics: &["Makeup Look", "Skincare Routine", "Nail Art", "Hairstyle", "Eyeliner", "Lip Color", "Braids", "Curly Hair", "Face Mask", "Brow Shape"],
        tags: &["Makeup Tips", "Skin Care", "Nail Designs", "Hair Styles", "Beauty Hacks", "Natural Makeup", "Eye Makeup", "Hair Care", "Glowing Skin", "Easy Hairstyles", "Nail Ideas"],
        blurbs: &["A simple routine that takes ten minutes in the morning.", "Soft tones that flatter every skin type.", "The trick is to blend, blend and blend again.", "Gentle on the skin and easy on the budget.", "Works for short and long hair."],
    },
    CategoryWords {
        name: "christmas",
        weight: 7,
        topics: &["Christmas Tree", "Wreath", "Ornament", "Advent Calendar", "Gift Wrap", "Stocking", "Table Setting", "Gingerbread House", "Holiday Card", "Garland"],
        tags: &["Christmas Decor", "Christmas Crafts", "Holiday Ideas", "Xmas", "Christmas Tree Decorations", "Christmas Gifts", "Winter Wonderland", "Festive", "DIY Ornaments", "Christmas Baking"],
        blurbs: &["Bring some sparkle to the holidays this year.", "A cozy idea for the whole family.", "Made with a few things you already have at home.", "Perfect for a festive evening with friends.", "Start a new holiday tradition."],
    },
    CategoryWords {
        name: "diy-and-crafts",
        weight: 9,
        topics: &["Paper Craft", "Macrame", "Upcycled Jar", "Felt Toy", "Clay Project", "Wood Sign", "Candle", "Embroidery", "Crochet Blanket", "Kids Craft"],
        tags: &["DIY Crafts", "Crafts For Kids", "Easy Crafts", "Upcycling", "Paper Crafts", "Handmade", "Craft Ideas", "Diy Home Decor", "Sewing Projects", "Crochet Patterns"],
        blurbs: &["A weekend project with a big payoff.", "Step by step instructions with photos.", "Turn leftovers into something useful.", "Cheap materials, beautiful result.", "Fun for kids and grown-ups."],
    },
    CategoryWords {
        name: "education",
        weight: 8,
        topics: &["Classroom Idea", "Study Tip", "Math Game", "Reading Activity", "Science Experiment", "Lesson Plan", "Worksheet", "Bulletin Board", "Spelling Game", "Homeschool Routine"],
        tags: &["Teaching Ideas", "Classroom Organization", "Study Tips", "Homeschool", "Kids Learning", "Math Activities", "Reading Comprehension", "Science For Kids", "Teacher Resources", "Learning Activities"],
        blurbs: &["Keeps students engaged from start to finish.", "A printable you can use again and again.", "Makes a tricky topic easy to understand.", "Great for the first week of school.", "Hands-on learning at its best."],
    },
    CategoryWords {
        name: "event-planning",
        weight: 7,
        topics: &["Wedding Idea", "Party Theme", "Centerpiece", "Birthday Party", "Baby Shower", "Invitation", "Backdrop", "Dessert Table", "Guest Favor", "Venue Decor"],
        tags: &["Party Ideas", "Wedding Planning", "Event Decor", "Birthday Party Ideas", "Baby Shower Ideas", "Party Decorations", "Wedding Decorations", "Event Planning Tips", "Party Themes", "Table Decorations"],
        blurbs: &["Everything you need for a stress-free celebration.", "Your guests will talk about it for weeks.", "A checklist that keeps the big day on track.", "Elegant details on a small budget.", "Easy to set up the night before."],
    },
    CategoryWords {
        name: "finance",
        weight: 7,
        topics: &["Budget Plan", "Savings Challenge", "Side Hustle", "Debt Payoff", "Money Tip", "Investing Basics", "Budget Binder", "Frugal Habit", "Retirement Plan", "Emergency Fund"],
        tags: &["Money Saving Tips", "Budgeting", "Personal Finance", "Saving Money", "Financial Freedom", "Side Hustle Ideas", "Debt Free", "Frugal Living", "Money Management", "Investing"],
        blurbs: &["Small changes that add up over a year.", "A simple plan to take control of your money.", "Track every dollar without the stress.", "How one family saved more than they expected.", "Start today, thank yourself later."],
    },
    CategoryWords {
        name: "home-decor",
        weight: 8,
        topics: &["Living Room", "Bedroom", "Kitchen", "Gallery Wall", "Bathroom", "Entryway", "Reading Nook", "Farmhouse Decor", "Boho Bedroom", "Small Space"],
        tags: &["Home Decor", "Living Room Decor", "Bedroom Ideas", "Interior Design", "Home Decor Ideas", "Farmhouse Style", "Kitchen Design", "Cozy Home", "Apartment Decor", "Room Inspiration"],
        blurbs: &["Warm textures and soft light make it feel like home.", "A makeover that cost less than you think.", "Clever storage for small spaces.", "Neutral tones with a pop of color.", "Before and after photos inside."],
    },
    CategoryWords {
        name: "mens-fashion",
        weight: 7,
        topics: &["Street Style", "Suit", "Casual Outfit", "Sneakers", "Watch", "Denim Jacket", "Capsule Wardrobe", "Winter Coat", "Smart Casual Look", "Leather Boots"],
        tags: &["Mens Fashion", "Mens Style", "Mens Outfits", "Street Style", "Casual Outfits", "Mens Fashion Casual", "Menswear", "Mens Accessories", "Style Guide", "Gentleman Style"],
        blurbs: &["Sharp without trying too hard.", "A few pieces that go with everything.", "Dress it up or down.", "The fit matters more than the label.", "An easy look for every season."],
    },
    CategoryWords {
        name: "quotes",
        weight: 8,
        topics: &["Inspirational Quote", "Motivational Quote", "Life Quote", "Love Quote", "Friendship Quote", "Positive Affirmation", "Funny Quote", "Morning Quote", "Self Love Quote", "Wisdom Quote"],
        tags: &["Quotes", "Inspirational Quotes", "Motivational Quotes", "Life Quotes", "Positive Quotes", "Quotes To Live By", "Words Of Wisdom", "Self Love", "Daily Motivation", "Happy Quotes"],
        blurbs: &["Words to carry with you today.", "A reminder that you are doing better than you think.", "Share it with someone who needs it.", "Read it slowly, then read it again.", "Little words, big meaning."],
    },
    CategoryWords {
        name: "tattoos",
        weight: 8,
        topics: &["Tattoo Design", "Small Tattoo", "Floral Tattoo", "Sleeve Tattoo", "Minimalist Tattoo", "Script Tattoo", "Wrist Tattoo", "Geometric Tattoo", "Back Tattoo", "Animal Tattoo"],
        tags: &["Tattoo Ideas", "Small Tattoos", "Tattoo Designs", "Tattoos For Women", "Tattoos For Men", "Minimalist Tattoo", "Flower Tattoos", "Sleeve Tattoos", "Fine Line Tattoo", "Body Art"],
        blurbs: &["Delicate lines that age beautifully.", "A meaningful design with a story behind it.", "Ask your artist about placement first.", "Bold work that stands out.", "Simple, timeless and personal."],
    },
    CategoryWords {
        name: "travel",
        weight: 9,
        topics: &["Road Trip", "Beach Getaway", "City Break", "Packing List", "Travel Itinerary", "Hidden Gem", "Mountain Hike", "Island Escape", "Weekend Trip", "Travel Hack"],
        tags: &["Travel Destinations", "Travel Tips", "Places To Travel", "Travel Photography", "Beautiful Places", "Vacation Ideas", "Travel Inspiration", "Packing Tips", "Adventure Travel", "Bucket List"],
        blurbs: &["Add this to your bucket list right now.", "What to see, where to eat and where to stay.", "The view alone is worth the trip.", "Travel light and see more.", "A guide written after three visits."],
    },
    CategoryWords {
        name: "vehicles",
        weight: 5,
        topics: &["Classic Car", "Motorcycle", "Camper Van", "Sports Car", "Pickup Truck", "Van Conversion", "Vintage Truck", "Dream Car", "Off Road Build", "Car Interior"],
        tags: &["Cars", "Classic Cars", "Motorcycles", "Dream Cars", "Van Life", "Car Accessories", "Trucks", "Vintage Cars", "Luxury Cars", "Car Care"],
        blurbs: &["Built by hand over two summers.", "Clean lines and a lot of power.", "Everything you need to know before you buy.", "A road trip machine with room for everyone.", "Restored to its original glory."],
    },
];

impl CategoryWords {
    /// The pin numbered `index` in this category by `poster`: title, description, tags, a
    /// UUID v4 and an image URL from `rng`, and the sentinels of `dirt_draw` (in
    /// `0..DIRT_DRAWS`; each value once per [`DIRT_DRAWS`] rows gives the observed rates).
    pub fn pin(&self, index: i64, poster: &Poster, dirt_draw: u64, rng: &mut impl Draw) -> PinRow {
        let dirt = Dirt::from_draw(dirt_draw);
        let unique_id = uuid_v4(rng.bits(), rng.bits());
        let hash = format!("{:016x}{:016x}", rng.bits(), rng.bits());
        let kind = if rng.below(100) < VIDEO_PERCENT { "video" } else { "image" };
        let mut pin = PinRow {
            index,
            unique_id,
            title: self.title(rng),
            description: self.description(rng),
            poster_name: poster.name.clone(),
            follower_count: poster.follower_count.clone(),
            tag_list: self.tag_list(rng),
            is_image_or_video: kind.to_string(),
            image_src: format!(
                "https://i.pinimg.com/originals/{}/{}/{}/{hash}.jpg",
                &hash[0..2],
                &hash[2..4],
                &hash[4..6]
            ),
            downloaded: 1,
            save_location: format!("Local save in /data/{}", self.name),
            category: self.name.to_string(),
        };
        dirt.apply(&mut pin);
        pin
    }

    /// Number of distinct poster names made from this category's words (before numbering).
    pub fn poster_names(&self) -> usize {
        POSTER_HEADS.len() * self.topics.len() * POSTER_TAILS.len()
    }

    /// Poster name number `i`: "<head> <topic> <tail>", numbered once every name is taken, so
    /// distinct `i` give distinct names.
    pub fn poster_name(&self, i: usize) -> String {
        let combos = self.poster_names();
        let (combo, round) = (i % combos, i / combos);
        let head = POSTER_HEADS[combo % POSTER_HEADS.len()];
        let rest = combo / POSTER_HEADS.len();
        let topic = self.topics[rest % self.topics.len()];
        let tail = POSTER_TAILS[rest / self.topics.len()];
        match round {
            0 => format!("{head} {topic} {tail}"),
            _ => format!("{head} {topic} {tail} {}", round + 1),
        }
    }

    /// A title from one of the title shapes.
    pub fn title(&self, rng: &mut impl Draw) -> String {
        rng.pick(&TITLE_TEMPLATES)
            .replace("{n}", &(5 + rng.below(46)).to_string())
            .replace("{adj}", rng.pick(&TITLE_ADJECTIVES))
            .replace("{topic}", rng.pick(self.topics))
    }

    /// A description: an opening sentence and a closing one.
    pub fn description(&self, rng: &mut impl Draw) -> String {
        let blurb = rng.pick(self.blurbs);
        format!("{blurb} {}", rng.pick(&CLOSINGS)).trim_end().to_string()
    }

    /// A tag list: three to seven distinct tags, comma-separated.
    pub fn tag_list(&self, rng: &mut impl Draw) -> String {
        let mut tags = self.tags.to_vec();
        let count = (3 + rng.below(5) as usize).min(tags.len());
        for i in 0..count {
            let j = i + rng.below((tags.len() - i) as u64) as usize;
            tags.swap(i, j);
        }
        tags[..count].join(",")
    }
}

/// An integer in `1..=max`, log-uniform.
fn log_uniform(rng: &mut impl Draw, max: u64) -> u64 {
    let x = ((max as f64 + 1.0).ln() * rng.unit()).exp();
    (x as u64).clamp(1, max)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A random UUID (version 4, variant 1) in its text form.
fn uuid_v4(high: u64, low: u64) -> String {
    let high = (high & !0xf000) | 0x4000;
    let low = (low & !(0b11 << 62)) | (0b10 << 62);
    let (a, b, c) = (high >> 32, (high >> 16) & 0xffff, high & 0xffff);
    let (d, e) = (low >> 48, low & 0xffff_ffff_ffff);
    format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}")
}

/// First words of poster account names.
#[rustfmt::skip]
const POSTER_HEADS: [&str; 24] = [
    "Daily", "Cozy", "Simple", "Modern", "Little", "Happy", "Wild", "Golden", "Urban", "Bright",
    "Crafty", "Clever", "Sunny", "Rustic", "Bold", "Tiny", "Lovely", "Fresh", "Quiet", "Classic",
    "Pretty", "Smart", "Honest", "Busy",
];

/// Last words of poster account names.
#[rustfmt::skip]
const POSTER_TAILS: [&str; 12] = [
    "Studio", "Co", "Journal", "Club", "Lab", "Diaries", "Hub", "Corner", "Life", "Magazine",
    "Collective", "Blog",
];

/// Adjectives used in titles.
#[rustfmt::skip]
const TITLE_ADJECTIVES: [&str; 16] = [
    "Easy", "Beautiful", "Simple", "Creative", "Stunning", "Cute", "Amazing", "Budget Friendly",
    "Quick", "Minimalist", "Unique", "Gorgeous", "Clever", "Cozy", "Trendy", "Classic",
];

/// Title shapes: `{n}` a number, `{adj}` an adjective, `{topic}` a topic of the category.
const TITLE_TEMPLATES: [&str; 8] = [
    "{n} {adj} {topic} Ideas",
    "{adj} {topic} Inspiration",
    "How to Make a {adj} {topic}",
    "{topic} for Beginners",
    "The Best {topic} Ideas of All Time",
    "{n} {topic} Ideas You Will Love",
    "My Favourite {adj} {topic}",
    "{adj} {topic}",
];

/// Closing sentences of descriptions.
const CLOSINGS: [&str; 8] = [
    "Save this pin for later.",
    "Find more ideas on our board.",
    "Click through for the full guide.",
    "Follow for more inspiration.",
    "Which one is your favourite?",
    "Tag a friend who would love this.",
    "Full details on the blog.",
    "",
];

/// The 243 country names of `geolocation_data`, sorted.
#[rustfmt::skip]
pub const COUNTRIES: [&str; 243] = [
    "Afghanistan", "Albania", "Algeria", "American Samoa", "Andorra", "Angola", "Anguilla",
    "Antarctica (the territory South of 60 deg S)", "Antigua and Barbuda", "Argentina", "Armenia",
    "Aruba", "Australia", "Austria", "Azerbaijan", "Bahamas", "Bahrain", "Bangladesh", "Barbados",
    "Belarus", "Belgium", "Belize", "Benin", "Bermuda", "Bhutan", "Bolivia",
    "Bosnia and Herzegovina", "Botswana", "Bouvet Island (Bouvetoya)", "Brazil",
    "British Indian Ocean Territory (Chagos Archipelago)", "British Virgin Islands",
    "Brunei Darussalam", "Bulgaria", "Burkina Faso", "Burundi", "Cambodia", "Cameroon", "Canada",
    "Cape Verde", "Cayman Islands", "Central African Republic", "Chad", "Chile", "China",
    "Christmas Island", "Cocos (Keeling) Islands", "Colombia", "Comoros", "Congo", "Cook Islands",
    "Costa Rica", "Cote d'Ivoire", "Croatia", "Cuba", "Cyprus", "Czech Republic", "Denmark",
    "Djibouti", "Dominica", "Dominican Republic", "Ecuador", "Egypt", "El Salvador",
    "Equatorial Guinea", "Eritrea", "Estonia", "Ethiopia", "Falkland Islands (Malvinas)",
    "Faroe Islands", "Fiji", "Finland", "France", "French Guiana", "French Polynesia",
    "French Southern Territories", "Gabon", "Gambia", "Georgia", "Germany", "Ghana", "Gibraltar",
    "Greece", "Greenland", "Grenada", "Guadeloupe", "Guam", "Guatemala", "Guernsey", "Guinea",
    "Guinea-Bissau", "Guyana", "Haiti", "Heard Island and McDonald Islands",
    "Holy See (Vatican City State)", "Honduras", "Hong Kong", "Hungary", "Iceland", "India",
    "Indonesia", "Iran", "Iraq", "Ireland", "Isle of Man", "Israel", "Italy", "Jamaica", "Japan",
    "Jersey", "Jordan", "Kazakhstan", "Kenya", "Kiribati", "Korea", "Kuwait", "Kyrgyz Republic",
    "Lao People's Democratic Republic", "Latvia", "Lebanon", "Lesotho", "Liberia",
    "Libyan Arab Jamahiriya", "Liechtenstein", "Lithuania", "Luxembourg", "Macao", "Macedonia",
    "Madagascar", "Malawi", "Malaysia", "Maldives", "Mali", "Malta", "Marshall Islands",
    "Martinique", "Mauritania", "Mauritius", "Mayotte", "Mexico", "Micronesia", "Moldova",
    "Monaco", "Mongolia", "Montenegro", "Montserrat", "Morocco", "Mozambique", "Myanmar",
    "Namibia", "Nauru", "Nepal", "Netherlands", "Netherlands Antilles", "New Caledonia",
    "New Zealand", "Nicaragua", "Niger", "Nigeria", "Niue", "Norfolk Island",
    "Northern Mariana Islands", "Norway", "Oman", "Pakistan", "Palau", "Palestinian Territory",
    "Panama", "Papua New Guinea", "Paraguay", "Peru", "Philippines", "Pitcairn Islands", "Poland",
    "Portugal", "Puerto Rico", "Qatar", "Reunion", "Romania", "Russian Federation", "Rwanda",
    "Saint Barthelemy", "Saint Helena", "Saint Kitts and Nevis", "Saint Lucia", "Saint Martin",
    "Saint Pierre and Miquelon", "Saint Vincent and the Grenadines", "Samoa", "San Marino",
    "Sao Tome and Principe", "Saudi Arabia", "Senegal", "Serbia", "Seychelles", "Sierra Leone",
    "Singapore", "Slovakia (Slovak Republic)", "Slovenia", "Solomon Islands", "Somalia",
    "South Africa", "South Georgia and the South Sandwich Islands", "Spain", "Sri Lanka", "Sudan",
    "Suriname", "Svalbard & Jan Mayen Islands", "Swaziland", "Sweden", "Switzerland",
    "Syrian Arab Republic", "Taiwan", "Tajikistan", "Tanzania", "Thailand", "Timor-Leste", "Togo",
    "Tokelau", "Tonga", "Trinidad and Tobago", "Tunisia", "Turkey", "Turkmenistan",
    "Turks and Caicos Islands", "Tuvalu", "Uganda", "Ukraine", "United Arab Emirates",
    "United Kingdom", "United States Minor Outlying Islands", "United States Virgin Islands",
    "United States of America", "Uruguay", "Uzbekistan", "Vanuatu", "Venezuela", "Vietnam",
    "Wallis and Futuna", "Western Sahara", "Yemen", "Zambia", "Zimbabwe",
];

/// Common English first names, sorted.
#[rustfmt::skip]
pub const FIRST_NAMES: [&str; 203] = [
    "Aaron", "Abigail", "Adam", "Adrian", "Alan", "Albert", "Alexander", "Alexis", "Alice",
    "Alicia", "Allison", "Amanda", "Amber", "Amy", "Andrea", "Andrew", "Angela", "Anna", "Anne",
    "Anthony", "Arthur", "Ashley", "Austin", "Barbara", "Benjamin", "Betty", "Beverly", "Billy",
    "Bobby", "Bradley", "Brandon", "Brenda", "Brian", "Brittany", "Bruce", "Bryan", "Caleb",
    "Carl", "Carlos", "Carol", "Caroline", "Catherine", "Charles", "Charlotte", "Cheryl", "Chloe",
    "Christian", "Christina", "Christine", "Christopher", "Cynthia", "Daniel", "Danielle", "David",
    "Deborah", "Debra", "Denise", "Dennis", "Diana", "Diane", "Donald", "Donna", "Dorothy",
    "Douglas", "Dylan", "Edward", "Elizabeth", "Ella", "Emily", "Emma", "Eric", "Ethan", "Eugene",
    "Evelyn", "Frances", "Frank", "Gabriel", "Gary", "George", "Gerald", "Gloria", "Grace",
    "Gregory", "Hannah", "Harold", "Heather", "Helen", "Henry", "Isabella", "Jack", "Jacob",
    "Jacqueline", "James", "Janet", "Janice", "Jason", "Jean", "Jeffrey", "Jennifer", "Jeremy",
    "Jerry", "Jesse", "Jessica", "Joan", "John", "Jonathan", "Jordan", "Jose", "Joseph", "Joshua",
    "Joyce", "Juan", "Judith", "Judy", "Julia", "Julie", "Justin", "Karen", "Katherine",
    "Kathleen", "Kathryn", "Kayla", "Keith", "Kelly", "Kenneth", "Kevin", "Kimberly", "Kyle",
    "Larry", "Laura", "Lauren", "Lawrence", "Linda", "Lisa", "Logan", "Louis", "Madison",
    "Margaret", "Maria", "Marie", "Marilyn", "Mark", "Martha", "Mary", "Matthew", "Megan",
    "Melissa", "Michael", "Michelle", "Nancy", "Natalie", "Nathan", "Nicholas", "Nicole", "Noah",
    "Olivia", "Pamela", "Patricia", "Patrick", "Paul", "Peter", "Philip", "Rachel", "Ralph",
    "Randy", "Raymond", "Rebecca", "Richard", "Robert", "Roger", "Ronald", "Rose", "Roy",
    "Russell", "Ruth", "Ryan", "Samantha", "Samuel", "Sandra", "Sara", "Sarah", "Scott", "Sean",
    "Sharon", "Shirley", "Sophia", "Stephanie", "Stephen", "Steven", "Susan", "Teresa", "Terry",
    "Theresa", "Thomas", "Timothy", "Tyler", "Victoria", "Vincent", "Virginia", "Walter", "Wayne",
    "William", "Zachary",
];

/// Common English surnames, sorted.
#[rustfmt::skip]
pub const LAST_NAMES: [&str; 240] = [
    "Abbott", "Acosta", "Adams", "Adkins", "Aguilar", "Alexander", "Allen", "Alvarez", "Anderson",
    "Andrews", "Armstrong", "Arnold", "Austin", "Bailey", "Baker", "Baldwin", "Banks", "Barker",
    "Barnes", "Barnett", "Bell", "Bennett", "Berry", "Bishop", "Black", "Bradley", "Brooks",
    "Brown", "Bryant", "Burke", "Burns", "Butler", "Campbell", "Carlson", "Carpenter", "Carroll",
    "Carter", "Castillo", "Chapman", "Chavez", "Clark", "Cole", "Coleman", "Collins", "Cook",
    "Cooper", "Cox", "Crawford", "Cruz", "Cunningham", "Daniels", "Davis", "Day", "Dean", "Diaz",
    "Dixon", "Douglas", "Duncan", "Dunn", "Edwards", "Elliott", "Ellis", "Evans", "Ferguson",
    "Fernandez", "Fisher", "Fleming", "Fletcher", "Flores", "Ford", "Foster", "Fowler", "Fox",
    "Franklin", "Freeman", "Garcia", "Gardner", "Garrett", "Gibson", "Gilbert", "Gomez",
    "Gonzalez", "Gordon", "Graham", "Grant", "Gray", "Green", "Greene", "Griffin", "Hall",
    "Hamilton", "Hansen", "Harper", "Harris", "Harrison", "Hart", "Harvey", "Hawkins", "Hayes",
    "Henderson", "Henry", "Hernandez", "Hicks", "Hill", "Hoffman", "Holland", "Holmes", "Howard",
    "Hudson", "Hughes", "Hunt", "Hunter", "Jackson", "James", "Jenkins", "Jensen", "Johnson",
    "Johnston", "Jones", "Jordan", "Kelley", "Kelly", "Kennedy", "Kim", "King", "Knight", "Lane",
    "Larson", "Lawrence", "Lawson", "Lee", "Lewis", "Little", "Long", "Lopez", "Lynch", "Marshall",
    "Martin", "Martinez", "Mason", "Matthews", "Mcdonald", "Meyer", "Miller", "Mills", "Mitchell",
    "Montgomery", "Moore", "Morales", "Morgan", "Morris", "Murphy", "Murray", "Myers", "Nelson",
    "Newman", "Nichols", "Olson", "Ortiz", "Owens", "Palmer", "Parker", "Patel", "Patterson",
    "Payne", "Perez", "Perkins", "Perry", "Peters", "Peterson", "Phillips", "Pierce", "Porter",
    "Powell", "Price", "Ramirez", "Ramos", "Reed", "Reid", "Reyes", "Reynolds", "Rice", "Richards",
    "Richardson", "Riley", "Rivera", "Roberts", "Robertson", "Robinson", "Rodriguez", "Rogers",
    "Rose", "Ross", "Russell", "Ryan", "Sanchez", "Sanders", "Schmidt", "Scott", "Shaw", "Simmons",
    "Simpson", "Smith", "Snyder", "Spencer", "Stanley", "Stephens", "Stevens", "Stewart", "Stone",
    "Sullivan", "Taylor", "Thomas", "Thompson", "Torres", "Tucker", "Turner", "Wagner", "Walker",
    "Wallace", "Walsh", "Ward", "Warren", "Washington", "Watkins", "Watson", "Weaver", "Webb",
    "Wells", "West", "Wheeler", "White", "Williams", "Williamson", "Willis", "Wilson", "Wood",
    "Woods", "Wright", "Young",
];
