using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora;

public sealed partial class MultiTaskCatalog
{
    /// <summary>
    /// The model to save for image files: <c>LoadImages</c> from a path column, then <paramref name="model"/>, with the input
    /// schema of a view holding only that path column. Saved with <c>mlContext.Model.Save(chain, inputSchema, path)</c>, the
    /// model.zip describes itself: loading it gives a model that reads image paths, as <c>mtlora predict</c> and any ML.NET
    /// consumer expect. Training can stay on the loader's decoded images (the fast PASCAL-Context path); only saving changes.
    /// </summary>
    /// <param name="model">The trained transformer (it reads the image column <see cref="MtLoraTransformer.ImageColumnName"/>).</param>
    /// <param name="imagePathColumnName">The text column with each image file's full path. Default <c>ImagePath</c>, as <c>LoadPascalContext</c> names it.</param>
    /// <returns>The chain and the input schema to save it with.</returns>
    /// <exception cref="ArgumentException">The path column name is empty or is the transformer's image column.</exception>
    public (ITransformer Model, DataViewSchema InputSchema) WithImageFileInput(MtLoraTransformer model, string imagePathColumnName = MtLoraColumnNames.ImagePath)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (string.IsNullOrWhiteSpace(imagePathColumnName))
            throw new ArgumentException("The image path column name must not be empty.", nameof(imagePathColumnName));
        if (imagePathColumnName == model.ImageColumnName)
            throw new ArgumentException($"The image path column '{imagePathColumnName}' is the model's image column; give the path column another name.", nameof(imagePathColumnName));
        var definition = SchemaDefinition.Create(typeof(ImagePathRow));
        definition[0].ColumnName = imagePathColumnName;
        var paths = Context.Data.LoadFromEnumerable(Array.Empty<ImagePathRow>(), definition);
        var loader = Context.Transforms.LoadImages(model.ImageColumnName, imageFolder: null, inputColumnName: imagePathColumnName).Fit(paths);
        return (new TransformerChain<ITransformer>(loader, model), paths.Schema);
    }

    /// <summary>
    /// The part of a saved model that reads decoded images: for a chain that starts by loading the MTLoRA transformer's image
    /// column from files (<see cref="WithImageFileInput"/>) fed with data that already holds that column decoded (e.g.
    /// <c>LoadPascalContext</c>'s default view), the transformers after the last image loader; otherwise the model itself.
    /// </summary>
    internal static ITransformer ForDecodedImages(ITransformer model, MtLoraTransformer mtlora, DataViewSchema input)
    {
        if (model is not IEnumerable<ITransformer> chain || input.GetColumnOrNull(mtlora.ImageColumnName) is not { Type: Microsoft.ML.Transforms.Image.ImageDataViewType })
            return model;
        var list = chain.ToList();
        int loader = list.FindLastIndex(t => t is ImageLoadingTransformer);
        if (loader < 0 || loader > list.IndexOf(mtlora)) return model;
        var rest = list.Skip(loader + 1).ToArray();
        return rest.Length == 1 ? rest[0] : new TransformerChain<ITransformer>(rest);
    }

    /// <summary>The one-column row of <see cref="WithImageFileInput"/>'s input schema.</summary>
    private sealed class ImagePathRow
    {
        public string ImagePath { get; set; } = "";
    }
}
