//! Kira's default avatar: a stylised head and shoulders (bob haircut, cat ears,
//! big eyes, brows, blush) built from a handful of ellipsoids and cones, with a
//! minimal VRM 1.0 humanoid skeleton and the expression presets as real morph
//! targets.
//!
//! Every mesh carries the same morph targets, in the order of [`EXPRESSIONS`],
//! so an expression binds target `i` on the face and on both eyes. Each part
//! of a mesh says how its vertices move for each expression.

use super::glb::GlbBuilder;
use serde_json::{Value, json};
use std::f32::consts::PI;

/// The expressions the avatar has, in morph-target order.
pub const EXPRESSIONS: [&str; 7] = ["happy", "angry", "sad", "relaxed", "surprised", "blink", "aa"];

/// Index of each expression in [`EXPRESSIONS`], named for the morph functions.
const HAPPY: usize = 0;
const ANGRY: usize = 1;
const SAD: usize = 2;
const RELAXED: usize = 3;
const SURPRISED: usize = 4;
const BLINK: usize = 5;
const AA: usize = 6;

/// How one expression moves a vertex: `(expression, position) -> delta`,
/// positions in the mesh's coordinates.
type Morph<'a> = &'a dyn Fn(usize, [f32; 3]) -> [f32; 3];

/// No expression moves it.
fn still(_: usize, _: [f32; 3]) -> [f32; 3] {
    [0.0; 3]
}

/// One primitive of a mesh: geometry, material and its morph deltas.
struct Part {
    positions: Vec<[f32; 3]>,
    normals: Vec<[f32; 3]>,
    indices: Vec<u16>,
    material: usize,
    /// One delta list per entry of [`EXPRESSIONS`].
    morphs: Vec<Vec<[f32; 3]>>,
}

impl Part {
    fn new(positions: Vec<[f32; 3]>, normals: Vec<[f32; 3]>, indices: Vec<u16>, material: usize, morph: Morph) -> Self {
        let morphs = (0..EXPRESSIONS.len())
            .map(|expression| positions.iter().map(|&position| morph(expression, position)).collect())
            .collect();
        Self { positions, normals, indices, material, morphs }
    }
}

fn normalize(v: [f32; 3]) -> [f32; 3] {
    let length = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(f32::EPSILON);
    [v[0] / length, v[1] / length, v[2] / length]
}

/// Rings and segments of an ellipsoid: enough to look round at its size
/// (every vertex carries a delta per expression, so small parts stay light).
fn detail(radii: [f32; 3]) -> [usize; 2] {
    if radii.iter().any(|&radius| radius > 0.05) { [28, 40] } else { [12, 18] }
}

/// An ellipsoid around `center` with `radii`, front (+Z) at longitude 0, with
/// `[rings, segments]` quads. `lowest(longitude)` is how far down (as the unit
/// sphere's y, -1 to 1) the surface reaches at each longitude: vertices below
/// are pulled up onto that edge, so a cut follows the curve smoothly (the hair
/// is an ellipsoid whose edge frames the face).
fn ellipsoid(
    center: [f32; 3],
    radii: [f32; 3],
    [rings, segments]: [usize; 2],
    material: usize,
    lowest: &dyn Fn(f32) -> f32,
    morph: Morph,
) -> Part {
    let [a, b, c] = radii;
    let mut positions = Vec::new();
    let mut normals = Vec::new();
    let mut pulled = Vec::new();
    for ring in 0..=rings {
        for segment in 0..=segments {
            let phi = 2.0 * PI * segment as f32 / segments as f32;
            let floor = lowest(phi).clamp(-1.0, 1.0);
            let height = (PI * ring as f32 / rings as f32).cos();
            let theta = height.max(floor).acos();
            let unit = [theta.sin() * phi.sin(), theta.cos(), theta.sin() * phi.cos()];
            positions.push([center[0] + a * unit[0], center[1] + b * unit[1], center[2] + c * unit[2]]);
            normals.push(normalize([unit[0] / a, unit[1] / b, unit[2] / c]));
            pulled.push(height < floor);
        }
    }
    let mut indices = Vec::new();
    let row = segments + 1;
    for ring in 0..rings {
        for segment in 0..segments {
            let i0 = ring * row + segment;
            let (i1, i2) = (i0 + 1, i0 + row);
            let i3 = i2 + 1;
            for triangle in [[i0, i2, i1], [i1, i2, i3]] {
                // All three corners on the edge: a sliver of no area.
                if !triangle.iter().all(|&i| pulled[i]) {
                    indices.extend(triangle.map(|i| i as u16));
                }
            }
        }
    }
    Part::new(positions, normals, indices, material, morph)
}

/// A closed ellipsoid.
fn blob(center: [f32; 3], radii: [f32; 3], material: usize, morph: Morph) -> Part {
    ellipsoid(center, radii, detail(radii), material, &|_| -1.0, morph)
}

/// A cone from a base circle at `base` (radius `radius`, squashed by
/// `depth_scale` front to back) to a tip `height` along `axis`.
fn cone(
    base: [f32; 3],
    axis: [f32; 3],
    radius: f32,
    height: f32,
    depth_scale: f32,
    material: usize,
    morph: Morph,
) -> Part {
    const SEGMENTS: usize = 24;
    // A frame around the axis: `side` in the XY plane, `depth` along Z.
    let side = normalize([axis[1], -axis[0], 0.0]);
    let depth = [0.0, 0.0, depth_scale];
    let tip = [base[0] + axis[0] * height, base[1] + axis[1] * height, base[2] + axis[2] * height];
    let mut positions = Vec::new();
    let mut normals = Vec::new();
    let mut indices = Vec::new();
    for segment in 0..=SEGMENTS {
        let phi = 2.0 * PI * segment as f32 / SEGMENTS as f32;
        let (s, c) = (phi.sin() * radius, phi.cos() * radius);
        let rim = [0, 1, 2].map(|k| base[k] + side[k] * s + depth[k] * c);
        let outward = normalize([0, 1, 2].map(|k| side[k] * phi.sin() + [0.0, 0.0, 1.0][k] * phi.cos()));
        let normal = normalize([0, 1, 2].map(|k| outward[k] * height + axis[k] * radius));
        positions.extend([rim, tip]);
        normals.extend([normal, normal]);
    }
    for segment in 0..SEGMENTS as u16 {
        let (rim, tip, next_rim) = (segment * 2, segment * 2 + 1, segment * 2 + 2);
        indices.extend([rim, next_rim, tip]);
    }
    Part::new(positions, normals, indices, material, morph)
}

/// 0 below `edge0`, 1 above `edge1`, smooth between.
fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale(v: [f32; 3], x: f32, y: f32) -> [f32; 3] {
    [v[0] * x, v[1] * y, 0.0]
}

/// Materials, in glTF order: (name, sRGB colour, outline).
const MATERIALS: [(&str, [f32; 3], bool); 8] = [
    ("skin", [1.0, 0.89, 0.82], true),
    ("hair", [0.47, 0.36, 0.72], true),
    ("eye", [0.20, 0.14, 0.32], false),
    ("eye_highlight", [1.0, 1.0, 1.0], false),
    ("mouth", [0.78, 0.33, 0.42], false),
    ("blush", [1.0, 0.62, 0.68], false),
    ("clothes", [0.38, 0.72, 0.78], true),
    ("brow", [0.33, 0.24, 0.50], false),
];
const SKIN: usize = 0;
const HAIR: usize = 1;
const EYE: usize = 2;
const HIGHLIGHT: usize = 3;
const MOUTH: usize = 4;
const BLUSH: usize = 5;
const CLOTHES: usize = 6;
const BROW: usize = 7;

fn linear(srgb: f32) -> f32 {
    if srgb <= 0.04045 { srgb / 12.92 } else { ((srgb + 0.055) / 1.055).powf(2.4) }
}

fn material(name: &str, srgb: [f32; 3], outline: bool) -> Value {
    let color = srgb.map(linear);
    // A cool, slightly purple shade keeps the toon look soft rather than grey.
    let shade = [color[0] * 0.62, color[1] * 0.55, color[2] * 0.72];
    json!({
        "name": name,
        "pbrMetallicRoughness": {
            "baseColorFactor": [color[0], color[1], color[2], 1.0],
            "metallicFactor": 0.0,
            "roughnessFactor": 1.0,
        },
        "doubleSided": name == "hair",
        "extensions": {
            "KHR_materials_unlit": {},
            "VRMC_materials_mtoon": {
                "specVersion": "1.0",
                "shadeColorFactor": shade,
                "shadingToonyFactor": 0.9,
                "shadingShiftFactor": -0.1,
                "giEqualizationFactor": 0.9,
                "parametricRimColorFactor": [0.18, 0.12, 0.22],
                "parametricRimFresnelPowerFactor": 3.0,
                "parametricRimLiftFactor": 0.05,
                "rimLightingMixFactor": 1.0,
                "outlineWidthMode": if outline { "worldCoordinates" } else { "none" },
                "outlineWidthFactor": if outline { 0.0012 } else { 0.0 },
                "outlineColorFactor": [0.22, 0.15, 0.28],
                "outlineLightingMixFactor": 0.6,
            },
        },
    })
}

/// The head mesh (head-bone coordinates): skin, hair, ears, brows, mouth, blush.
fn face() -> Vec<Part> {
    let mut parts = vec![blob([0.0, 0.11, 0.0], [0.125, 0.115, 0.115], SKIN, &still)];

    let hair_center = [0.0, 0.118, -0.004];
    let hair_lowest = |longitude: f32| {
        let front = longitude.cos();
        // Pointed strands across the bangs: a triangle wave along the longitude.
        let strand = ((longitude * 36.0 / (2.0 * PI)).fract() * 2.0 - 1.0).abs();
        let bangs = -0.014 * (1.0 - strand) * smoothstep(0.5, 0.85, front);
        // A bob: low at the sides and back, above the brows in front.
        let edge = -0.085 + 0.148 * smoothstep(0.3, 0.9, front) + bangs;
        edge / 0.125
    };
    // Finer than the rest, so the strands are pointed and the edge smooth.
    parts.push(ellipsoid(hair_center, [0.133, 0.125, 0.124], [48, 144], HAIR, &hair_lowest, &still));

    for side in [1.0f32, -1.0] {
        let tilt = 0.38f32;
        let axis = [side * tilt.sin(), tilt.cos(), -0.08];
        let base = [side * 0.072, 0.206, -0.012];
        let ear = move |expression: usize, position: [f32; 3]| {
            let rel = sub(position, base);
            let along = (rel[0] * axis[0] + rel[1] * axis[1] + rel[2] * axis[2]) / 0.075;
            match expression {
                SAD => [side * 0.022 * along, -0.03 * along, 0.0],
                SURPRISED => [-side * 0.004 * along, 0.014 * along, 0.0],
                ANGRY => [side * 0.01 * along, -0.008 * along, -0.018 * along],
                HAPPY => [0.0, 0.006 * along, 0.0],
                _ => [0.0; 3],
            }
        };
        parts.push(cone(base, normalize(axis), 0.04, 0.075, 0.55, HAIR, &ear));

        let brow_center = [side * 0.045, 0.149, 0.099];
        let brow = move |expression: usize, position: [f32; 3]| {
            let rel = sub(position, brow_center);
            // 1 at the end nearer the nose, 0 at the outer end.
            let inner = (0.5 - side * rel[0] / 0.042).clamp(0.0, 1.0);
            match expression {
                HAPPY => [0.0, 0.006, 0.0],
                ANGRY => [0.0, -0.013 * inner + 0.003 * (1.0 - inner), 0.0],
                SAD => [0.0, 0.011 * inner - 0.003, 0.0],
                RELAXED => [0.0, -0.002, 0.0],
                SURPRISED => [0.0, 0.014, 0.0],
                BLINK => [0.0, -0.003, 0.0],
                AA => [0.0, 0.002, 0.0],
                _ => [0.0; 3],
            }
        };
        parts.push(blob(brow_center, [0.021, 0.0055, 0.007], BROW, &brow));

        let cheek_center = [side * 0.074, 0.078, 0.084];
        let cheek = move |expression: usize, position: [f32; 3]| {
            let rel = sub(position, cheek_center);
            match expression {
                HAPPY => [rel[0] * 0.4, rel[1] * 0.4, 0.0],
                RELAXED => [rel[0] * 0.2, rel[1] * 0.2, 0.0],
                // Pale when sad or shocked.
                SAD | SURPRISED => [rel[0] * -0.5, rel[1] * -0.5, -0.004],
                _ => [0.0; 3],
            }
        };
        parts.push(blob(cheek_center, [0.017, 0.009, 0.006], BLUSH, &cheek));
    }

    let mouth_center = [0.0, 0.058, 0.099];
    let mouth = move |expression: usize, position: [f32; 3]| {
        let rel = sub(position, mouth_center);
        let u = rel[0] / 0.017;
        let curve = u * u;
        let [dx, dy, _] = match expression {
            HAPPY => scale(rel, 0.35, 1.3),
            ANGRY => scale(rel, -0.25, -0.4),
            SAD => scale(rel, -0.15, -0.3),
            RELAXED => scale(rel, 0.1, 0.0),
            SURPRISED => scale(rel, -0.45, 2.6),
            AA => scale(rel, -0.15, 3.4),
            _ => [0.0; 3],
        };
        let corners = match expression {
            HAPPY => 0.010 * curve - 0.002,
            ANGRY => -0.005 * curve,
            SAD => -0.009 * curve + 0.002,
            RELAXED => 0.004 * curve,
            SURPRISED => -0.002,
            AA => -0.004,
            _ => 0.0,
        };
        [dx, dy + corners, 0.0]
    };
    parts.push(blob(mouth_center, [0.017, 0.0045, 0.006], MOUTH, &mouth));
    parts
}

/// One eye mesh (eye-bone coordinates); `side` is +1 for the left eye (+X).
fn eye(side: f32) -> Vec<Part> {
    const WIDTH: f32 = 0.016;
    let iris = move |expression: usize, position: [f32; 3]| {
        let [x, y, _] = position;
        let inner = (0.5 - side * x / (2.0 * WIDTH)).clamp(0.0, 1.0);
        let top = y.max(0.0);
        match expression {
            // Closed in an upward arc: ^ ^
            HAPPY => [0.0, -y * 0.82 + 0.009 * (1.0 - (x / WIDTH).powi(2)).max(0.0) - 0.003, 0.0],
            ANGRY => [0.0, -top * (0.3 + 0.4 * inner), 0.0],
            SAD => [0.0, -top * (0.25 + 0.4 * (1.0 - inner)) + 0.001, 0.0],
            RELAXED => [0.0, -top * 0.55 - y.min(0.0) * 0.1, 0.0],
            SURPRISED => [x * 0.2, y * 0.25, 0.0],
            BLINK => [0.0, -y * 0.9 - 0.002, 0.0],
            _ => [0.0; 3],
        }
    };
    let highlight_center = [0.005, 0.009, 0.0065];
    let highlight = move |expression: usize, position: [f32; 3]| match expression {
        // Hidden inside the head while the eye is closed or narrowed.
        HAPPY | BLINK | RELAXED => [0.0, -position[1] * 0.8, -0.02],
        SURPRISED => [position[0] * 0.2, position[1] * 0.25, 0.0],
        ANGRY => [0.0, -0.004, -0.004],
        _ => [0.0; 3],
    };
    vec![
        blob([0.0; 3], [WIDTH, 0.024, 0.008], EYE, &iris),
        blob(highlight_center, [0.0055, 0.0065, 0.002], HIGHLIGHT, &highlight),
    ]
}

/// The shoulders and neck (chest-bone coordinates); they do not change with expressions.
fn body() -> Vec<Part> {
    vec![
        blob([0.0, 0.1, -0.005], [0.16, 0.15, 0.095], CLOTHES, &still),
        blob([0.0, 0.235, -0.005], [0.036, 0.06, 0.034], SKIN, &still),
    ]
}

/// Adds a mesh of `parts`; returns its index.
fn push_mesh(builder: &mut GlbBuilder, meshes: &mut Vec<Value>, name: &str, parts: &[Part], morphs: bool) -> usize {
    let primitives: Vec<Value> = parts
        .iter()
        .map(|part| {
            let mut primitive = json!({
                "attributes": {
                    "POSITION": builder.push_vec3(&part.positions),
                    "NORMAL": builder.push_vec3(&part.normals),
                },
                "indices": builder.push_indices(&part.indices),
                "material": part.material,
                "mode": 4,
            });
            if morphs {
                let targets: Vec<Value> =
                    part.morphs.iter().map(|deltas| json!({ "POSITION": builder.push_vec3(deltas) })).collect();
                primitive["targets"] = Value::Array(targets);
            }
            primitive
        })
        .collect();
    let mut mesh = json!({ "name": name, "primitives": primitives });
    if morphs {
        mesh["weights"] = json!(vec![0.0; EXPRESSIONS.len()]);
        mesh["extras"] = json!({ "targetNames": EXPRESSIONS });
    }
    meshes.push(mesh);
    meshes.len() - 1
}

/// The scene's nodes, built bone by bone.
#[derive(Default)]
struct Nodes {
    nodes: Vec<Value>,
    humanoid: serde_json::Map<String, Value>,
}

impl Nodes {
    /// Adds a node under `parent`; a `bone` name maps it in the humanoid.
    fn add(&mut self, name: &str, parent: Option<usize>, translation: [f32; 3], bone: bool) -> usize {
        let index = self.nodes.len();
        self.nodes.push(json!({ "name": name, "translation": translation }));
        if let Some(parent) = parent {
            let children = self.nodes[parent].as_object_mut().map(|node| node.entry("children").or_insert(json!([])));
            if let Some(Value::Array(children)) = children {
                children.push(json!(index));
            }
        }
        if bone {
            self.humanoid.insert(name.to_owned(), json!({ "node": index }));
        }
        index
    }

    /// Adds a node showing `mesh` under `parent`.
    fn add_mesh(&mut self, name: &str, parent: usize, mesh: usize) -> usize {
        let index = self.add(name, Some(parent), [0.0; 3], false);
        self.nodes[index]["mesh"] = json!(mesh);
        index
    }
}

/// Kira's default avatar as VRM 1.0 bytes (a GLB file).
pub fn default_avatar() -> Vec<u8> {
    let mut builder = GlbBuilder::default();
    let mut meshes = Vec::new();
    let face_mesh = push_mesh(&mut builder, &mut meshes, "face", &face(), true);
    let left_eye_mesh = push_mesh(&mut builder, &mut meshes, "eye_left", &eye(1.0), true);
    let right_eye_mesh = push_mesh(&mut builder, &mut meshes, "eye_right", &eye(-1.0), true);
    let body_mesh = push_mesh(&mut builder, &mut meshes, "body", &body(), false);

    // A T-pose facing +Z, in meters, as VRM 1.0 expects; the limbs carry no
    // mesh (the page frames head and shoulders) but complete the humanoid.
    let mut nodes = Nodes::default();
    let root = nodes.add("Kira", None, [0.0; 3], false);
    let hips = nodes.add("hips", Some(root), [0.0, 0.9, 0.0], true);
    let spine = nodes.add("spine", Some(hips), [0.0, 0.08, 0.0], true);
    let chest = nodes.add("chest", Some(spine), [0.0, 0.12, 0.0], true);
    let neck = nodes.add("neck", Some(chest), [0.0, 0.22, 0.0], true);
    let head = nodes.add("head", Some(neck), [0.0, 0.08, 0.0], true);
    let left_eye = nodes.add("leftEye", Some(head), [0.042, 0.104, 0.102], true);
    let right_eye = nodes.add("rightEye", Some(head), [-0.042, 0.104, 0.102], true);
    let face_node = nodes.add_mesh("face", head, face_mesh);
    let left_eye_node = nodes.add_mesh("eye_left", left_eye, left_eye_mesh);
    let right_eye_node = nodes.add_mesh("eye_right", right_eye, right_eye_mesh);
    nodes.add_mesh("body", chest, body_mesh);
    for (side, x) in [("left", 1.0f32), ("right", -1.0)] {
        let upper_arm = nodes.add(&format!("{side}UpperArm"), Some(chest), [x * 0.17, 0.17, 0.0], true);
        let lower_arm = nodes.add(&format!("{side}LowerArm"), Some(upper_arm), [x * 0.25, 0.0, 0.0], true);
        nodes.add(&format!("{side}Hand"), Some(lower_arm), [x * 0.23, 0.0, 0.0], true);
        let upper_leg = nodes.add(&format!("{side}UpperLeg"), Some(hips), [x * 0.08, -0.05, 0.0], true);
        let lower_leg = nodes.add(&format!("{side}LowerLeg"), Some(upper_leg), [0.0, -0.4, 0.0], true);
        nodes.add(&format!("{side}Foot"), Some(lower_leg), [0.0, -0.38, 0.0], true);
    }

    let expressions: serde_json::Map<String, Value> = EXPRESSIONS
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let binds: Vec<Value> = [face_node, left_eye_node, right_eye_node]
                .iter()
                .map(|node| json!({ "node": node, "index": index, "weight": 1.0 }))
                .collect();
            // Blinking over eyes already closed in a smile would squash them flat.
            let override_blink = if *name == "happy" { "block" } else { "none" };
            let expression = json!({
                "morphTargetBinds": binds,
                "isBinary": false,
                "overrideBlink": override_blink,
                "overrideLookAt": "none",
                "overrideMouth": "none",
            });
            ((*name).to_owned(), expression)
        })
        .collect();
    let range = |degrees: f32| json!({ "inputMaxValue": 90.0, "outputScale": degrees });

    let document = json!({
        "asset": { "version": "2.0", "generator": concat!("Workly ", env!("CARGO_PKG_VERSION")) },
        "extensionsUsed": ["KHR_materials_unlit", "VRMC_materials_mtoon", "VRMC_vrm"],
        "scene": 0,
        "scenes": [{ "name": "Kira", "nodes": [root] }],
        "nodes": nodes.nodes,
        "meshes": meshes,
        "materials": MATERIALS.iter().map(|(name, color, outline)| material(name, *color, *outline)).collect::<Vec<_>>(),
        "extensions": {
            "VRMC_vrm": {
                "specVersion": "1.0",
                "meta": {
                    "name": "Kira",
                    "version": env!("CARGO_PKG_VERSION"),
                    "authors": ["Workly"],
                    "licenseUrl": "https://vrm.dev/licenses/1.0/",
                    "avatarPermission": "everyone",
                    "allowExcessivelyViolentUsage": false,
                    "allowExcessivelySexualUsage": false,
                    "commercialUsage": "corporation",
                    "allowPoliticalOrReligiousUsage": false,
                    "allowAntisocialOrHateUsage": false,
                    "creditNotation": "unnecessary",
                    "allowRedistribution": true,
                    "modification": "allowModificationRedistribution",
                },
                "humanoid": { "humanBones": nodes.humanoid },
                "lookAt": {
                    "type": "bone",
                    "offsetFromHeadBone": [0.0, 0.104, 0.1],
                    "rangeMapHorizontalInner": range(8.0),
                    "rangeMapHorizontalOuter": range(8.0),
                    "rangeMapVerticalDown": range(6.0),
                    "rangeMapVerticalUp": range(6.0),
                },
                "expressions": { "preset": expressions },
            },
        },
    });
    builder.finish(document)
}
