//! What a renderer holds after applying commands: the model, every
//! expression's target, the transition speed, the blink and head settings.
//!
//! The Unity transport keeps one to re-send the avatar's state after a
//! reconnect; the reference peer keeps one as its model of the Unity app; the
//! VMC transport keeps one as the targets it eases towards. It knows nothing
//! about wires or time.

use super::command::{Command, Expression, HeadMovement, HeadPose, ModelPath, TransitionSpeed, Unit};
use super::mouth::Mouth;

/// Whether a model was loaded, as far as the commands tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ModelState {
    /// No `load_model` or `unload_model` yet.
    #[default]
    Unknown,
    /// Loaded from this path.
    Loaded(ModelPath),
    /// Unloaded.
    Unloaded,
}

/// A renderer's state, built by applying commands in order; `None` where no
/// command has said anything yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AvatarState {
    /// The model.
    pub model: ModelState,
    /// Target weight of each expression, indexed by [`Expression::index`].
    pub expressions: [Option<Unit>; Expression::ALL.len()],
    /// The transition speed.
    pub transition_speed: Option<TransitionSpeed>,
    /// Whether the renderer blinks on its own.
    pub auto_blink: Option<bool>,
    /// The renderer's head movement settings.
    pub auto_head_movement: Option<HeadMovement>,
    /// The head pose drawn by the director.
    pub head_pose: Option<HeadPose>,
    /// The mouth drawn by the director.
    pub mouth: Option<Mouth>,
}

impl AvatarState {
    /// Applies one command, as the Unity controller would.
    pub fn apply(&mut self, command: &Command) {
        match command {
            Command::LoadModel(path) => self.model = ModelState::Loaded(path.clone()),
            Command::UnloadModel => self.model = ModelState::Unloaded,
            Command::SetExpression { expression, value } => self.expressions[expression.index()] = Some(*value),
            Command::ResetExpressions => {
                for expression in Expression::ALL.into_iter().filter(|e| e.is_emotional()) {
                    self.expressions[expression.index()] = Some(Unit::ZERO);
                }
            }
            Command::SetTransitionSpeed(speed) => self.transition_speed = Some(*speed),
            Command::SetAutoBlink(enabled) => self.auto_blink = Some(*enabled),
            Command::SetAutoHeadMovement(head) => self.auto_head_movement = Some(*head),
            Command::SetHeadPose(pose) => self.head_pose = Some(*pose),
            Command::SetMouth(mouth) => self.mouth = Some(*mouth),
        }
    }

    /// The target weight of `expression` (zero when never set).
    pub fn target(&self, expression: Expression) -> Unit {
        self.expressions[expression.index()].unwrap_or(Unit::ZERO)
    }

    /// Commands that bring a fresh renderer to this state: the model first
    /// (loading resets the face), then the settings, then every known target.
    pub fn replay(&self) -> Vec<Command> {
        let model = match &self.model {
            ModelState::Unknown => None,
            ModelState::Loaded(path) => Some(Command::LoadModel(path.clone())),
            ModelState::Unloaded => Some(Command::UnloadModel),
        };
        let settings = [
            self.transition_speed.map(Command::SetTransitionSpeed),
            self.auto_blink.map(Command::SetAutoBlink),
            self.auto_head_movement.map(Command::SetAutoHeadMovement),
            self.head_pose.map(Command::SetHeadPose),
            self.mouth.map(Command::SetMouth),
        ];
        let expressions = Expression::ALL.into_iter().filter_map(|expression| {
            self.expressions[expression.index()].map(|v| Command::set_expression(expression, v))
        });
        model.into_iter().chain(settings.into_iter().flatten()).chain(expressions).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_rebuilds_the_same_state() {
        let mut state = AvatarState::default();
        for command in [
            Command::LoadModel(ModelPath::new("kira.vrm").unwrap()),
            Command::set_expression(Expression::Joy, Unit::new(0.7).unwrap()),
            Command::set_expression(Expression::Blink, Unit::ONE),
            Command::ResetExpressions,
            Command::set_expression(Expression::Sorrow, Unit::new(0.4).unwrap()),
            Command::SetTransitionSpeed(TransitionSpeed::new(4.0).unwrap()),
            Command::SetAutoBlink(true),
        ] {
            state.apply(&command);
        }
        assert_eq!(state.target(Expression::Joy), Unit::ZERO);
        assert_eq!(state.target(Expression::Blink), Unit::ONE);
        let mut rebuilt = AvatarState::default();
        let replay = state.replay();
        assert_eq!(replay[0], Command::LoadModel(ModelPath::new("kira.vrm").unwrap()));
        replay.iter().for_each(|command| rebuilt.apply(command));
        assert_eq!(rebuilt, state);
    }
}
