//! The avatar commands and their Unity wire form.
//!
//! A [`Command`] is one change to the avatar (load it, set an expression's
//! target weight, turn auto-blink on, ...). Its fields are checked types
//! ([`Unit`], [`TransitionSpeed`], [`ModelPath`], ...) that can only hold values
//! the Unity bridge can parse: no NaN, nothing outside its range, no string that
//! would break the bridge's substring parser (see `specs/unity-bridge.md`). So
//! [`Command::encode_unity`] cannot produce a line Unity would misread, whatever
//! the caller passed in. This module does not send anything; the transports do.

use super::mouth::{Mouth, Vowel};
use crate::emotion::Emotion;
use std::fmt;

/// A command or one of its arguments was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// Not one of the command names.
    #[error(
        "unknown avatar command {0:?} (expected load_model, unload_model, set_expression, reset_expressions, \
         set_transition_speed, set_auto_blink, set_auto_head_movement, set_head_pose or set_mouth)"
    )]
    UnknownCommand(String),
    /// The wrong number of arguments for a command.
    #[error("{command} takes {expected}")]
    Arguments {
        /// The command.
        command: &'static str,
        /// What it takes, in words.
        expected: &'static str,
    },
    /// Not an expression the Unity controller knows.
    #[error(
        "unknown expression {0:?} (expected one of joy, angry, sorrow, fun, surprised, neutral, blink, blink_l, blink_r)"
    )]
    UnknownExpression(String),
    /// A number argument that is not a finite number.
    #[error("{what} must be a finite number, not {text:?}")]
    NotANumber {
        /// Which argument.
        what: &'static str,
        /// What was given.
        text: String,
    },
    /// A bool argument that is not `true` or `false`.
    #[error("{what} must be true or false, not {text:?}")]
    NotABool {
        /// Which argument.
        what: &'static str,
        /// What was given.
        text: String,
    },
    /// Head movement intervals in the wrong order.
    #[error("min_interval ({min}) must not exceed max_interval ({max})")]
    IntervalOrder {
        /// The shortest interval, in seconds.
        min: f32,
        /// The longest interval, in seconds.
        max: f32,
    },
    /// A model path the Unity bridge could not read back.
    #[error("model path {path:?} {reason}")]
    ModelPath {
        /// The path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

crate::classed!(BadInput: CommandError);

/// An avatar expression the Unity controller understands (VRM 0.x presets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expression {
    /// Happiness (VRM 1.0 `happy`).
    Joy,
    /// Anger.
    Angry,
    /// Sadness (VRM 1.0 `sad`).
    Sorrow,
    /// Relaxed fun (VRM 1.0 `relaxed`).
    Fun,
    /// Surprise.
    Surprised,
    /// The neutral preset.
    Neutral,
    /// Both eyes closed.
    Blink,
    /// Left eye closed.
    BlinkL,
    /// Right eye closed.
    BlinkR,
}

impl Expression {
    /// Every expression, in the order state is replayed and VMC frames list them.
    pub const ALL: [Expression; 9] = [
        Expression::Joy,
        Expression::Angry,
        Expression::Sorrow,
        Expression::Fun,
        Expression::Surprised,
        Expression::Neutral,
        Expression::Blink,
        Expression::BlinkL,
        Expression::BlinkR,
    ];

    /// The name on the Unity wire.
    pub fn unity_name(self) -> &'static str {
        self.names().0
    }

    /// The VMC blendshape names: VRM 0.x first, then VRM 1.0 (a VMC sender
    /// sends both, see `specs/vmc.md`).
    pub fn vmc_names(self) -> [&'static str; 2] {
        let (_, v0, v1) = self.names();
        [v0, v1]
    }

    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Expression::Joy => ("joy", "Joy", "happy"),
            Expression::Angry => ("angry", "Angry", "angry"),
            Expression::Sorrow => ("sorrow", "Sorrow", "sad"),
            Expression::Fun => ("fun", "Fun", "relaxed"),
            Expression::Surprised => ("surprised", "Surprised", "surprised"),
            Expression::Neutral => ("neutral", "Neutral", "neutral"),
            Expression::Blink => ("blink", "Blink", "blink"),
            Expression::BlinkL => ("blink_l", "Blink_L", "blinkLeft"),
            Expression::BlinkR => ("blink_r", "Blink_R", "blinkRight"),
        }
    }

    /// The expression named `name` on the Unity wire.
    pub fn from_unity_name(name: &str) -> Option<Expression> {
        Expression::ALL.into_iter().find(|expression| expression.unity_name() == name)
    }

    /// Whether `reset_expressions` sets this one back to zero (the five
    /// emotional expressions; neutral and the blinks are left alone).
    pub fn is_emotional(self) -> bool {
        matches!(
            self,
            Expression::Joy | Expression::Angry | Expression::Sorrow | Expression::Fun | Expression::Surprised
        )
    }

    /// Whether the renderer eases towards this expression's target
    /// (`transition_speed`) rather than showing it at once; blinks are drawn
    /// frame by frame and must stay crisp.
    pub fn is_eased(self) -> bool {
        !matches!(self, Expression::Blink | Expression::BlinkL | Expression::BlinkR)
    }

    /// The expression that shows `emotion`, or `None` for neutral (the resting
    /// face is every emotional expression at zero).
    pub fn of_emotion(emotion: Emotion) -> Option<Expression> {
        match emotion {
            Emotion::Neutral => None,
            Emotion::Joy => Some(Expression::Joy),
            Emotion::Angry => Some(Expression::Angry),
            Emotion::Sorrow => Some(Expression::Sorrow),
            Emotion::Fun => Some(Expression::Fun),
            Emotion::Surprised => Some(Expression::Surprised),
        }
    }

    /// Position in [`Expression::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A weight in `0..=1`, never NaN.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Unit(f32);

impl Unit {
    /// Zero weight.
    pub const ZERO: Unit = Unit(0.0);
    /// Full weight.
    pub const ONE: Unit = Unit(1.0);

    /// `value` clamped to `0..=1`; NaN is refused because it has no sensible weight.
    pub fn new(value: f32) -> Result<Unit, CommandError> {
        if value.is_nan() {
            return Err(CommandError::NotANumber { what: "value", text: "NaN".to_owned() });
        }
        Ok(Unit::saturating(value))
    }

    /// `value` clamped to `0..=1`, NaN as zero (for computed weights such as an
    /// emotion's intensity, where zero is the safe reading).
    pub fn saturating(value: f32) -> Unit {
        // `+ 0.0` turns -0.0 into 0.0, so the wire never shows "-0".
        if value.is_nan() { Unit::ZERO } else { Unit(value.clamp(0.0, 1.0) + 0.0) }
    }

    /// The weight.
    pub fn get(self) -> f32 {
        self.0
    }
}

/// How fast Unity eases an expression towards its target, clamped to the
/// controller's `0.1..=10`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct TransitionSpeed(f32);

impl TransitionSpeed {
    /// The Unity controller's own default.
    pub const UNITY_DEFAULT: TransitionSpeed = TransitionSpeed(2.0);

    /// `speed` clamped to `0.1..=10`; NaN is refused.
    pub fn new(speed: f32) -> Result<TransitionSpeed, CommandError> {
        if speed.is_nan() {
            return Err(CommandError::NotANumber { what: "speed", text: "NaN".to_owned() });
        }
        Ok(TransitionSpeed(speed.clamp(0.1, 10.0)))
    }

    /// The speed (per second).
    pub fn get(self) -> f32 {
        self.0
    }
}

/// Settings of Unity's random head movement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadMovement {
    enabled: bool,
    min_interval_s: f32,
    max_interval_s: f32,
    max_angle_deg: f32,
}

impl HeadMovement {
    /// The Unity controller's default: a turn every 3 to 7 s within 5 degrees.
    pub const UNITY_DEFAULT: HeadMovement =
        HeadMovement { enabled: true, min_interval_s: 3.0, max_interval_s: 7.0, max_angle_deg: 5.0 };

    /// Checked settings: intervals are clamped to `0.1..=3600` s and the angle
    /// to `0..=45` degrees; non-finite numbers and `min > max` are refused.
    pub fn new(
        enabled: bool,
        min_interval_s: f32,
        max_interval_s: f32,
        max_angle_deg: f32,
    ) -> Result<Self, CommandError> {
        let finite = |what, value: f32| {
            if value.is_finite() { Ok(value) } else { Err(CommandError::NotANumber { what, text: value.to_string() }) }
        };
        let min = finite("min_interval", min_interval_s)?.clamp(0.1, 3600.0);
        let max = finite("max_interval", max_interval_s)?.clamp(0.1, 3600.0);
        let angle = finite("max_angle", max_angle_deg)?.clamp(0.0, 45.0);
        if min > max {
            return Err(CommandError::IntervalOrder { min, max });
        }
        Ok(HeadMovement { enabled, min_interval_s: min, max_interval_s: max, max_angle_deg: angle })
    }

    /// Whether the head moves.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Shortest pause between two turns, in seconds.
    pub fn min_interval_s(&self) -> f32 {
        self.min_interval_s
    }

    /// Longest pause between two turns, in seconds.
    pub fn max_interval_s(&self) -> f32 {
        self.max_interval_s
    }

    /// Largest yaw, in degrees (pitch goes to half of it).
    pub fn max_angle_deg(&self) -> f32 {
        self.max_angle_deg
    }
}

/// A head rotation away from rest, in degrees, each clamped to `-45..=45`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HeadPose {
    yaw_deg: f32,
    pitch_deg: f32,
}

impl HeadPose {
    /// The head at rest.
    pub const REST: HeadPose = HeadPose { yaw_deg: 0.0, pitch_deg: 0.0 };

    /// A checked pose; non-finite angles are refused.
    pub fn new(yaw_deg: f32, pitch_deg: f32) -> Result<HeadPose, CommandError> {
        for (what, value) in [("yaw", yaw_deg), ("pitch", pitch_deg)] {
            if !value.is_finite() {
                return Err(CommandError::NotANumber { what, text: value.to_string() });
            }
        }
        Ok(HeadPose { yaw_deg: yaw_deg.clamp(-45.0, 45.0), pitch_deg: pitch_deg.clamp(-45.0, 45.0) })
    }

    /// Turn left or right, in degrees.
    pub fn yaw_deg(&self) -> f32 {
        self.yaw_deg
    }

    /// Nod up or down, in degrees.
    pub fn pitch_deg(&self) -> f32 {
        self.pitch_deg
    }
}

/// A model path as the Unity bridge can read it back: no `"` (its string
/// reader does not understand escapes, and a quote would also let a value
/// contain a quoted command name), no control characters (a raw newline would
/// split the message), and `/` instead of `\` (JSON would double the
/// backslash and Unity would read it doubled; Windows accepts `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPath(String);

impl ModelPath {
    /// Checks `path`, turning `\` into `/`.
    pub fn new(path: &str) -> Result<ModelPath, CommandError> {
        let refuse = |reason| Err(CommandError::ModelPath { path: path.to_owned(), reason });
        if path.is_empty() {
            return refuse("is empty");
        }
        if path.contains('"') {
            return refuse("contains a double quote, which the Unity bridge cannot read");
        }
        if path.chars().any(char::is_control) {
            return refuse("contains a control character (a newline, say)");
        }
        Ok(ModelPath(path.replace('\\', "/")))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One change to the avatar.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Instantiate the avatar.
    LoadModel(ModelPath),
    /// Destroy the avatar.
    UnloadModel,
    /// Set an expression's target weight.
    SetExpression {
        /// Which expression.
        expression: Expression,
        /// Its target weight.
        value: Unit,
    },
    /// Set the five emotional expressions' targets to zero.
    ResetExpressions,
    /// How fast expressions ease towards their targets.
    SetTransitionSpeed(TransitionSpeed),
    /// Whether the renderer blinks on its own.
    SetAutoBlink(bool),
    /// Whether and how the renderer moves the head on its own.
    SetAutoHeadMovement(HeadMovement),
    /// A head rotation, drawn by the director for renderers that do not move
    /// the head themselves (VMC). The Unity bridge has no such command, so the
    /// Unity transport does not send it.
    SetHeadPose(HeadPose),
    /// The mouth while Kira speaks, drawn by the director from her voice for
    /// renderers that take vowel blendshapes (VMC). The deployed Unity
    /// controller knows no mouth expression, so the Unity transport does not
    /// send it either.
    SetMouth(Mouth),
}

/// What a command sets: a later command with the same key supersedes an
/// earlier one, so only the later needs sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Loaded or not (`load_model`, `unload_model`).
    Model,
    /// One expression's target.
    Expression(Expression),
    /// `reset_expressions`.
    Reset,
    /// The transition speed.
    TransitionSpeed,
    /// The auto-blink setting.
    AutoBlink,
    /// The head movement settings.
    AutoHeadMovement,
    /// The head pose.
    HeadPose,
    /// The mouth.
    Mouth,
}

impl Command {
    /// The command's name: the Unity command name, `set_head_pose` or `set_mouth`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::LoadModel(_) => "load_model",
            Command::UnloadModel => "unload_model",
            Command::SetExpression { .. } => "set_expression",
            Command::ResetExpressions => "reset_expressions",
            Command::SetTransitionSpeed(_) => "set_transition_speed",
            Command::SetAutoBlink(_) => "set_auto_blink",
            Command::SetAutoHeadMovement(_) => "set_auto_head_movement",
            Command::SetHeadPose(_) => "set_head_pose",
            Command::SetMouth(_) => "set_mouth",
        }
    }

    /// What this command sets.
    pub fn key(&self) -> Key {
        match self {
            Command::LoadModel(_) | Command::UnloadModel => Key::Model,
            Command::SetExpression { expression, .. } => Key::Expression(*expression),
            Command::ResetExpressions => Key::Reset,
            Command::SetTransitionSpeed(_) => Key::TransitionSpeed,
            Command::SetAutoBlink(_) => Key::AutoBlink,
            Command::SetAutoHeadMovement(_) => Key::AutoHeadMovement,
            Command::SetHeadPose(_) => Key::HeadPose,
            Command::SetMouth(_) => Key::Mouth,
        }
    }

    /// Whether this command makes `earlier` pointless: same key, or a reset
    /// after an emotional expression's target.
    pub fn supersedes(&self, earlier: &Command) -> bool {
        match (self, earlier) {
            (Command::ResetExpressions, Command::SetExpression { expression, .. }) => expression.is_emotional(),
            _ => self.key() == earlier.key(),
        }
    }

    /// `Command::SetExpression` shorthand.
    pub fn set_expression(expression: Expression, value: Unit) -> Command {
        Command::SetExpression { expression, value }
    }

    /// Appends the command's Unity line (`{"command":...,"data":{...}}\n`) to
    /// `out`. Returns false, writing nothing, for [`Command::SetHeadPose`]
    /// and [`Command::SetMouth`], which the Unity bridge does not have.
    pub fn encode_unity(&self, out: &mut Vec<u8>) -> bool {
        // Built from pieces rather than with `write!`: this runs for every
        // command sent, and the formatting machinery costs more than the rest.
        let data: &[(&str, Field)] = match self {
            Command::SetHeadPose(_) | Command::SetMouth(_) => return false,
            Command::LoadModel(path) => &[("path", Field::Text(path.as_str()))],
            Command::UnloadModel | Command::ResetExpressions => &[],
            Command::SetExpression { expression, value } => {
                &[("name", Field::Text(expression.unity_name())), ("value", Field::Number(value.get()))]
            }
            Command::SetTransitionSpeed(speed) => &[("speed", Field::Number(speed.get()))],
            Command::SetAutoBlink(enabled) => &[("enabled", Field::Bool(*enabled))],
            Command::SetAutoHeadMovement(head) => &[
                ("enabled", Field::Bool(head.enabled)),
                ("min_interval", Field::Number(head.min_interval_s)),
                ("max_interval", Field::Number(head.max_interval_s)),
                ("max_angle", Field::Number(head.max_angle_deg)),
            ],
        };
        out.extend_from_slice(b"{\"command\":\"");
        out.extend_from_slice(self.name().as_bytes());
        out.extend_from_slice(b"\",\"data\":{");
        for (index, (key, field)) in data.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            match field {
                // The checked types guarantee no quote, backslash or control
                // character, so the text needs no escaping.
                Field::Text(text) => {
                    out.push(b'"');
                    out.extend_from_slice(text.as_bytes());
                    out.push(b'"');
                }
                // Finite by construction; Unity reads the exponent form too.
                Field::Number(number) => out.extend_from_slice(zmij::Buffer::new().format_finite(*number).as_bytes()),
                Field::Bool(true) => out.extend_from_slice(b"true"),
                Field::Bool(false) => out.extend_from_slice(b"false"),
            }
        }
        out.extend_from_slice(b"}}\n");
        true
    }

    /// Parses the command-line form: a name and its arguments, as
    /// `workly avatar send` takes them and the reference peer prints them
    /// (`set_expression joy 0.8`).
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Result<Command, CommandError> {
        let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        let Some((&name, args)) = words.split_first() else {
            return Err(CommandError::UnknownCommand(String::new()));
        };
        let arity = |command, expected, count| {
            if args.len() == count { Ok(()) } else { Err(CommandError::Arguments { command, expected }) }
        };
        match name {
            "load_model" => {
                arity("load_model", "one argument: the .vrm path", 1)?;
                Ok(Command::LoadModel(ModelPath::new(args[0])?))
            }
            "unload_model" => arity("unload_model", "no arguments", 0).map(|()| Command::UnloadModel),
            "set_expression" => {
                arity("set_expression", "two arguments: NAME VALUE (0..1)", 2)?;
                let expression = Expression::from_unity_name(args[0])
                    .ok_or_else(|| CommandError::UnknownExpression(args[0].to_owned()))?;
                Ok(Command::set_expression(expression, Unit::new(number("value", args[1])?)?))
            }
            "reset_expressions" => arity("reset_expressions", "no arguments", 0).map(|()| Command::ResetExpressions),
            "set_transition_speed" => {
                arity("set_transition_speed", "one argument: SPEED (0.1..10)", 1)?;
                Ok(Command::SetTransitionSpeed(TransitionSpeed::new(number("speed", args[0])?)?))
            }
            "set_auto_blink" => {
                arity("set_auto_blink", "one argument: true or false", 1)?;
                Ok(Command::SetAutoBlink(boolean("enabled", args[0])?))
            }
            "set_auto_head_movement" => {
                const EXPECTED: &str = "ENABLED, or ENABLED MIN_INTERVAL MAX_INTERVAL MAX_ANGLE";
                let enabled = boolean("enabled", args.first().copied().unwrap_or_default())
                    .map_err(|_| CommandError::Arguments { command: "set_auto_head_movement", expected: EXPECTED })?;
                let head = HeadMovement::UNITY_DEFAULT;
                let (min, max, angle) = match args.len() {
                    1 => (head.min_interval_s, head.max_interval_s, head.max_angle_deg),
                    4 => (
                        number("min_interval", args[1])?,
                        number("max_interval", args[2])?,
                        number("max_angle", args[3])?,
                    ),
                    _ => return Err(CommandError::Arguments { command: "set_auto_head_movement", expected: EXPECTED }),
                };
                Ok(Command::SetAutoHeadMovement(HeadMovement::new(enabled, min, max, angle)?))
            }
            "set_head_pose" => {
                arity("set_head_pose", "two arguments: YAW PITCH (degrees)", 2)?;
                Ok(Command::SetHeadPose(HeadPose::new(number("yaw", args[0])?, number("pitch", args[1])?)?))
            }
            "set_mouth" => {
                const EXPECTED: &str = "two arguments: VOWEL (a, i, u, e or o) OPEN (0..1)";
                arity("set_mouth", EXPECTED, 2)?;
                let vowel = Vowel::from_letter(args[0])
                    .ok_or(CommandError::Arguments { command: "set_mouth", expected: EXPECTED })?;
                Ok(Command::SetMouth(Mouth { open: Unit::new(number("open", args[1])?)?, vowel }))
            }
            other => Err(CommandError::UnknownCommand(other.to_owned())),
        }
    }
}

/// One field of a command's `data` object.
enum Field<'a> {
    Text(&'a str),
    Number(f32),
    Bool(bool),
}

/// A finite number, the way the command line spells one.
fn number(what: &'static str, text: &str) -> Result<f32, CommandError> {
    text.parse::<f32>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| CommandError::NotANumber { what, text: text.to_owned() })
}

fn boolean(what: &'static str, text: &str) -> Result<bool, CommandError> {
    text.parse::<bool>().map_err(|_| CommandError::NotABool { what, text: text.to_owned() })
}

impl fmt::Display for Command {
    /// The command-line form, which [`Command::from_words`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Command::LoadModel(path) => write!(f, "{name} {}", path.as_str()),
            Command::UnloadModel | Command::ResetExpressions => f.write_str(name),
            Command::SetExpression { expression, value } => {
                write!(f, "{name} {} {}", expression.unity_name(), value.get())
            }
            Command::SetTransitionSpeed(speed) => write!(f, "{name} {}", speed.get()),
            Command::SetAutoBlink(enabled) => write!(f, "{name} {enabled}"),
            Command::SetAutoHeadMovement(head) => write!(
                f,
                "{name} {} {} {} {}",
                head.enabled, head.min_interval_s, head.max_interval_s, head.max_angle_deg
            ),
            Command::SetHeadPose(pose) => write!(f, "{name} {} {}", pose.yaw_deg, pose.pitch_deg),
            Command::SetMouth(mouth) => write!(f, "{name} {} {}", mouth.vowel.letter(), mouth.open.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(command: &Command) -> String {
        let mut out = Vec::new();
        assert!(command.encode_unity(&mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unity_lines_match_the_spec() {
        let joy = Command::set_expression(Expression::Joy, Unit::new(0.8).unwrap());
        assert_eq!(line(&joy), "{\"command\":\"set_expression\",\"data\":{\"name\":\"joy\",\"value\":0.8}}\n");
        assert_eq!(line(&Command::UnloadModel), "{\"command\":\"unload_model\",\"data\":{}}\n");
        assert_eq!(
            line(&Command::SetAutoHeadMovement(HeadMovement::UNITY_DEFAULT)),
            "{\"command\":\"set_auto_head_movement\",\"data\":{\"enabled\":true,\"min_interval\":3.0,\
             \"max_interval\":7.0,\"max_angle\":5.0}}\n"
        );
        assert!(!Command::SetHeadPose(HeadPose::REST).encode_unity(&mut Vec::new()));
        assert!(!Command::SetMouth(Mouth::CLOSED).encode_unity(&mut Vec::new()));
    }

    #[test]
    fn values_are_clamped_or_refused() {
        assert!(Unit::new(f32::NAN).is_err());
        assert_eq!(Unit::new(1.5).unwrap().get(), 1.0);
        assert_eq!(Unit::new(-0.0).unwrap().get().to_string(), "0");
        assert_eq!(Unit::saturating(f32::NAN), Unit::ZERO);
        assert_eq!(TransitionSpeed::new(50.0).unwrap().get(), 10.0);
        assert!(TransitionSpeed::new(f32::NAN).is_err());
        assert!(HeadMovement::new(true, 7.0, 3.0, 5.0).is_err());
        assert!(HeadPose::new(f32::INFINITY, 0.0).is_err());
    }

    #[test]
    fn model_paths_cannot_break_the_line() {
        assert!(ModelPath::new("a\"set_expression\".vrm").is_err());
        assert!(ModelPath::new("kira\n.vrm").is_err());
        assert!(ModelPath::new("").is_err());
        assert_eq!(ModelPath::new(r"C:\avatars\kira.vrm").unwrap().as_str(), "C:/avatars/kira.vrm");
    }

    #[test]
    fn command_line_form_round_trips() {
        for words in [
            "set_expression joy 0.8",
            "set_transition_speed 3",
            "set_auto_blink false",
            "set_auto_head_movement true 2 6 4",
            "reset_expressions",
            "unload_model",
            "load_model kira.vrm",
            "set_head_pose 4 -2",
            "set_mouth o 0.5",
        ] {
            let parts: Vec<&str> = words.split(' ').collect();
            assert_eq!(Command::from_words(&parts).unwrap().to_string(), words);
        }
        assert_eq!(
            Command::from_words(&["set_auto_head_movement", "true"]).unwrap(),
            Command::SetAutoHeadMovement(HeadMovement::UNITY_DEFAULT)
        );
    }

    #[test]
    fn bad_words_are_refused() {
        assert!(matches!(Command::from_words(&["dance"]), Err(CommandError::UnknownCommand(_))));
        assert!(matches!(
            Command::from_words(&["set_expression", "happy", "1"]),
            Err(CommandError::UnknownExpression(_))
        ));
        assert!(matches!(Command::from_words(&["set_expression", "joy", "NaN"]), Err(CommandError::NotANumber { .. })));
        assert!(matches!(Command::from_words(&["set_expression", "joy"]), Err(CommandError::Arguments { .. })));
        assert!(matches!(Command::from_words(&["set_auto_blink", "yes"]), Err(CommandError::NotABool { .. })));
        assert!(Command::from_words::<&str>(&[]).is_err());
    }

    #[test]
    fn a_reset_supersedes_emotional_targets_only() {
        let joy = Command::set_expression(Expression::Joy, Unit::ONE);
        let blink = Command::set_expression(Expression::Blink, Unit::ONE);
        assert!(Command::ResetExpressions.supersedes(&joy));
        assert!(!Command::ResetExpressions.supersedes(&blink));
        assert!(Command::UnloadModel.supersedes(&Command::LoadModel(ModelPath::new("a.vrm").unwrap())));
        assert!(!joy.supersedes(&blink));
    }
}
