namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Options of <c>mlContext.MultiTask().Evaluate</c>: which tasks to score, the columns holding labels and predictions,
/// and the single-task baselines of Δm. The defaults fit the PASCAL-Context loader and the MTLoRA transformer.
/// </summary>
public sealed class MultiTaskEvaluatorOptions
{
    /// <summary>
    /// The tasks to evaluate: any descriptors (PASCAL-Context's, NYUD-v2's or your own, e.g. a model's
    /// <see cref="MtLoraTransformer.Tasks"/>), each read from the columns it names (<see cref="DenseTaskDescriptor.LabelColumnName"/>
    /// and <see cref="DenseTaskDescriptor.PredictionColumnName"/>; the column properties below rename PASCAL's four names) and
    /// scored by its kind: a segmentation with its own class count, a binary map (<c>edge_f@0.5</c> when it has a fixed positive
    /// weight, else the saliency metrics), depth (holes, 0, and the task's ignore value left out) or normals. A task listed here
    /// whose column is missing is an error.
    /// Null (the default): the built-ins found by their columns: PASCAL-Context's four (so <c>semseg</c> is PASCAL's, with
    /// <see cref="SemsegClassCount"/> classes) and NYUD's <c>depth</c> and <c>edge</c>. NYUD's 40-class <c>semseg</c>
    /// shares PASCAL's name and columns, so list it (<see cref="DenseTaskDescriptor.Nyud"/>), as any task of your own.
    /// </summary>
    public IList<DenseTaskDescriptor>? Tasks { get; set; }

    /// <summary>Semantic segmentation labels: a vector of Byte (or Single) class ids, H·W, 255 = ignore. Default <c>SemsegLabel</c>.</summary>
    public string SemsegLabelColumnName { get; set; } = DenseTaskDescriptor.PascalSemanticSegmentation.LabelColumnName;

    /// <summary>Semantic segmentation predictions: a vector of Byte (or Single) class ids, H·W. Default <c>SemsegPredictedLabel</c>.</summary>
    public string SemsegPredictedLabelColumnName { get; set; } = DenseTaskDescriptor.PascalSemanticSegmentation.PredictionColumnName;

    /// <summary>
    /// Human parts labels: a vector of Byte (or Single) class ids, H·W, 255 = ignore; a map that is 0 everywhere (no annotated
    /// person) is ignored whole under both protocols, as the reference's AddIgnoreRegions. Default <c>HumanPartsLabel</c>.
    /// </summary>
    public string HumanPartsLabelColumnName { get; set; } = DenseTaskDescriptor.PascalHumanParts.LabelColumnName;

    /// <summary>Human parts predictions: a vector of Byte (or Single) class ids, H·W. Default <c>HumanPartsPredictedLabel</c>.</summary>
    public string HumanPartsPredictedLabelColumnName { get; set; } = DenseTaskDescriptor.PascalHumanParts.PredictionColumnName;

    /// <summary>Saliency labels: a vector of Byte (or Single), H·W, 0 or 1 (255 = ignore). Default <c>SaliencyLabel</c>.</summary>
    public string SaliencyLabelColumnName { get; set; } = DenseTaskDescriptor.PascalSaliency.LabelColumnName;

    /// <summary>Saliency predictions: a vector of Single probabilities in [0, 1], H·W. Default <c>SaliencyProbability</c>.</summary>
    public string SaliencyProbabilityColumnName { get; set; } = DenseTaskDescriptor.PascalSaliency.PredictionColumnName;

    /// <summary>Normals labels: a vector of Single, 3·H·W (CHW), 255 in the first plane = invalid pixel. Default <c>NormalsLabel</c>.</summary>
    public string NormalsLabelColumnName { get; set; } = DenseTaskDescriptor.PascalSurfaceNormals.LabelColumnName;

    /// <summary>Normals predictions: a vector of Single, 3·H·W (CHW), normalised before scoring. Default <c>NormalsPredicted</c>.</summary>
    public string NormalsPredictedColumnName { get; set; } = DenseTaskDescriptor.PascalSurfaceNormals.PredictionColumnName;

    /// <summary>An Int32 column with each row's height; when present with <see cref="WidthColumnName"/>, every map's size is checked against it. Default <c>Height</c>.</summary>
    public string HeightColumnName { get; set; } = MtLoraColumnNames.Height;

    /// <summary>An Int32 column with each row's width. Default <c>Width</c>.</summary>
    public string WidthColumnName { get; set; } = MtLoraColumnNames.Width;

    /// <summary>A text column naming each row in error messages, when present. Default <c>Id</c>.</summary>
    public string IdColumnName { get; set; } = MtLoraColumnNames.Id;

    /// <summary>The number of semantic segmentation classes (21: background and the 20 VOC classes).</summary>
    public int SemsegClassCount { get; set; } = DenseTaskDescriptor.PascalSemanticSegmentation.OutputChannels;

    /// <summary>The number of human part classes (7: background and six parts).</summary>
    public int HumanPartsClassCount { get; set; } = DenseTaskDescriptor.PascalHumanParts.OutputChannels;

    /// <summary>The single-task baselines of Δm. Default <see cref="SingleTaskBaselines.Paper"/>; <see cref="SingleTaskBaselines.None"/> for no Δm.</summary>
    public SingleTaskBaselines Baselines { get; set; } = SingleTaskBaselines.Paper;

    /// <summary>
    /// The protocol (<see cref="EvaluationProtocol"/>). Default null: <see cref="EvaluationProtocol.Reference"/> where the
    /// evaluator runs the model itself (<c>Evaluate(model, data, options)</c>), and <see cref="EvaluationProtocol.Native"/> for
    /// an already scored view, whose predictions the MTLoRA transformer gives at each image's own size. A scored view under
    /// <see cref="EvaluationProtocol.Reference"/> needs predictions of <see cref="ImageSize"/>×<see cref="ImageSize"/>; its labels
    /// are resized from each row's <see cref="HeightColumnName"/>×<see cref="WidthColumnName"/> as the reference does (nearest
    /// for class maps, binary maps and depth, bicubic and renormalised for normals: the rules of <c>Evaluate(model, data)</c>).
    /// Under both protocols the labels then get the reference's AddIgnoreRegions, as in <c>Evaluate(model, data)</c>: PASCAL
    /// human parts that are 0 everywhere, depth 0 and normals with 255 in any plane or of length 0 are ignored.
    /// </summary>
    public EvaluationProtocol? Protocol { get; set; }

    /// <summary>
    /// The network's input size S, the size the labels are resized to under <see cref="EvaluationProtocol.Reference"/> on a
    /// scored view (<c>Evaluate(model, data, options)</c> takes the model's own). Default 448, the paper's.
    /// </summary>
    public int ImageSize { get; set; } = Data.Preprocessing.DenseImagePreprocessing.DefaultImageSize;

    internal string LabelColumn(DenseTaskDescriptor task) => task.Name switch
    {
        "semseg" => SemsegLabelColumnName,
        "human_parts" => HumanPartsLabelColumnName,
        "sal" => SaliencyLabelColumnName,
        "normals" => NormalsLabelColumnName,
        _ => task.LabelColumnName,                  // a task of your own: the column its descriptor names
    };

    internal string PredictionColumn(DenseTaskDescriptor task) => task.Name switch
    {
        "semseg" => SemsegPredictedLabelColumnName,
        "human_parts" => HumanPartsPredictedLabelColumnName,
        "sal" => SaliencyProbabilityColumnName,
        "normals" => NormalsPredictedColumnName,
        _ => task.PredictionColumnName,
    };
}
